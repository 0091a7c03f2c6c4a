"""Writes files named as the launcher's are (result.json, trial.log, job.pkl) into its job
folder, the working directory under `hydra.job.chdir=true`, as many training apps do."""

import json
import os
import pickle
import sys

import hydra
from omegaconf import DictConfig


def own_files(x: int) -> dict:
    """The bytes this app writes for `x`: what must be there after any launcher."""
    return {
        "result.json": json.dumps({"written_by": "the app", "x": x}).encode(),
        "trial.log": f"the app's own log, x={x}\n".encode(),
        "job.pkl": pickle.dumps({"app_job": x}),
    }


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    print(f"training x={cfg.x}", flush=True)
    for name, data in own_files(int(cfg.x)).items():
        with open(os.path.join(os.getcwd(), name), "wb") as f:
            f.write(data)
    print(f"done x={cfg.x}", flush=True)
    return float(cfg.x) * 2


if __name__ == "__main__":
    sys.exit(main())
