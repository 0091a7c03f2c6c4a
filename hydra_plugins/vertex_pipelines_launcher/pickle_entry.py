"""Runs one trial from a pickled job, for task functions that no command line can reach.

`python -m hydra_plugins.vertex_pipelines_launcher.pickle_entry --job JOB.pkl --num N
--run-id ID --sweep-dir DIR` loads the cloudpickled task function, composed job config and
Hydra singleton state (custom OmegaConf resolvers included), runs the job as Hydra's
basic launcher does (`run_job` with the sweep dir keys, the launching process's callbacks),
and writes the same .vertex/result.json as the command entry. Arguments after `--` are ignored:
they show the trial's overrides in the Vertex console.
"""

import argparse
import sys
import time
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="pickle_entry", description=__doc__)
    parser.add_argument("--job", required=True, help="the pickled job")
    parser.add_argument("--num", required=True, type=int, help="the job's number in the sweep")
    parser.add_argument("--run-id", required=True, help="the run the trial belongs to")
    parser.add_argument("--sweep-dir", required=True, help="the folder of the sweep's job folders")
    args = parser.parse_args(argv)

    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf import open_dict, read_write

    from .trial_record import job_starts, write_result

    with open(args.job, "rb") as f:
        job = cloudpickle.load(f)
    setup_globals()
    Singleton.set_state(job["singleton_state"])
    config = job["config"]
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = args.sweep_dir
        config.hydra.job.id = args.num
        config.hydra.job.num = args.num
    job_starts()
    start = time.time()
    ret = run_job(
        hydra_context=job["hydra_context"],
        task_function=job["task_function"],
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    write_result(str(config.hydra.runtime.output_dir), ret, start, run_id=args.run_id, number=args.num)
    if ret.status == JobStatus.FAILED:
        import traceback

        sys.stderr.write(f"Error executing job with overrides: {ret.overrides}\n")
        traceback.print_exception(ret._return_value)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
