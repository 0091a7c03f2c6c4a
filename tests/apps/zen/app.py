"""hydra-zen's multirun example: the task function lives in this script, which launches
the sweep from Python rather than through Hydra's command line. Prints its JobReturns.
The arguments are extra overrides (the launcher to use, the sweep dir)."""

import json
import sys

from hydra.core.hydra_config import HydraConfig
from hydra_zen import launch, make_config

Conf = make_config(a=1, b="bar")


def task_fn(cfg):
    return {"a": cfg.a, "score": cfg.a * 0.5, "b": cfg.b, "num": HydraConfig.get().job.num}


if __name__ == "__main__":
    (jobs,) = launch(Conf, task_fn, overrides=["a=1,2,3", "b=baz", *sys.argv[1:]], multirun=True, version_base="1.3")
    shown = [
        {"overrides": j.overrides, "status": j.status.name, "return_value": j.return_value, "cfg": dict(j.cfg)} for j in jobs
    ]
    print("JOB RETURNS " + json.dumps(shown))
