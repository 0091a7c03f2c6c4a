"""Runs one trial from a pickled job, for task functions that no command line can reach.

`python -m hydra_plugins.vertex_pipelines_launcher.pickle_entry --job JOB.pkl --output-dir DIR`
loads the cloudpickled task function, composed config and Hydra singleton state (custom
OmegaConf resolvers included), runs the job the way Hydra's own launchers do, and writes
the same result.json as the command entry. Arguments after `--` are ignored: they show
the trial's overrides in the Vertex console.
"""

import argparse
import os
import sys
import time
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="pickle_entry", description=__doc__)
    parser.add_argument("--job", required=True, help="the pickled job")
    parser.add_argument("--output-dir", required=True, help="the trial's Hydra run dir")
    args = parser.parse_args(argv)

    import cloudpickle
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf import open_dict, read_write

    from .callbacks import RESULT_FILE, is_chief, result_record, write_json

    with open(args.job, "rb") as f:
        job = cloudpickle.load(f)
    setup_globals()
    Singleton.set_state(job["singleton_state"])
    config = job["config"]
    output_dir = os.path.abspath(args.output_dir)
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.run.dir = output_dir
    HydraConfig.instance().set_config(config)
    start = time.time()
    ret = run_job(
        hydra_context=job["hydra_context"],
        task_function=job["task_function"],
        config=config,
        job_dir_key="hydra.run.dir",
        job_subdir_key=None,
    )
    record = result_record(ret, start, time.time())
    record["working_dir"] = ret.working_dir
    if is_chief():
        os.makedirs(output_dir, exist_ok=True)
        write_json(os.path.join(output_dir, RESULT_FILE), record)
    if ret.status == JobStatus.FAILED:
        sys.stderr.write(record["error"] or "the trial failed\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
