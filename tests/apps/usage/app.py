"""Runs for a moment on the machines its config names; `fail=true` raises after that, on
the workers a second after the chief, so the chief records the failure before the job ends."""

import time

import hydra
from omegaconf import DictConfig

from hydra_plugins.vertex_pipelines_launcher.trial_record import is_chief


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    time.sleep(cfg.sleep)
    if cfg.fail:
        if not is_chief():
            time.sleep(1.0)
        raise RuntimeError("failed after running")
    return float(cfg.replicas)


if __name__ == "__main__":
    main()
