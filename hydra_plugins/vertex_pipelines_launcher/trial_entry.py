"""Runs one trial of a sweep the way Hydra's basic launcher runs one job of it.

    python -m hydra_plugins.vertex_pipelines_launcher.trial_entry \\
        --num 3 --run-id RUN --sweep-dir /gcs/BUCKET/ROOT/RUN -- train.py ARGS...

starts the app exactly as `python train.py ARGS` would (or `-m pkg.app ARGS`), so Hydra
itself resolves `--config-path`, `--config-dir`, `--config-name` and the decorator's
config. `ARGS` are the sweep's own command line with this job's overrides (`--multirun`,
the sweep's Hydra overrides, the job's overrides). Where Hydra would hand the composed
sweep config to a sweeper, this module does what `BasicLauncher.launch` does for job
`--num`: `load_sweep_config`, job id and number, `run_job` with the sweep dir keys. So the
job composes the same config, sees `hydra.mode=MULTIRUN`, and a user's callbacks get the
job events only (the sweep's own multirun events happen once, in the launching process).

The trial then writes `.vertex/result.json` (status, JSON value, error, times, run id) in
its output dir, and fails as Hydra fails a job: "Error executing job ..." and exit code 1.
"""

import os
import runpy
import sys
import time
from typing import Any, List, NamedTuple, Optional, Sequence

ENTRY_MODULE = "hydra_plugins.vertex_pipelines_launcher.trial_entry"
# The trial this process runs, for programs without Hydra that want its place and number.
# Hydra's plugin scan executes this module again in the same namespace: keep the value.
running: Optional["TrialArgs"] = globals().get("running")


class TrialArgs(NamedTuple):
    num: int
    run_id: str
    sweep_dir: str
    program: List[str]  # ["train.py"] or ["-m", "pkg.app"]
    app_args: List[str]


def parse(argv: Sequence[str]) -> TrialArgs:
    """`--num N --run-id ID --sweep-dir DIR -- PROGRAM ARGS`: the options before `--`
    are the entry's, everything after it is the app's command line."""
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit(f"usage: python -m {ENTRY_MODULE} --num N --run-id ID --sweep-dir DIR -- SCRIPT|-m MODULE ARGS")
    cut = argv.index("--")
    own, rest = argv[:cut], argv[cut + 1 :]
    opts = dict(zip(own[::2], own[1::2], strict=False))  # an odd count is refused just below
    missing = [k for k in ("--num", "--run-id", "--sweep-dir") if k not in opts]
    if missing or len(own) % 2 or not rest or (rest[0] == "-m" and len(rest) < 2):
        raise SystemExit(f"{ENTRY_MODULE}: bad arguments {own} -- {rest[:2]}")
    program = rest[:2] if rest[0] == "-m" else rest[:1]
    return TrialArgs(int(opts["--num"]), opts["--run-id"], opts["--sweep-dir"], program, rest[len(program) :])


def run_one_job(
    hydra: Any, config_name: Optional[str], task_function: Any, overrides: List[str], num: int, sweep_dir: str, run_id: str
) -> Any:
    """What `Hydra.multirun` and `BasicLauncher.launch` do for one job, without a sweeper."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import run_job, setup_globals
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf, open_dict

    from .trial_record import job_starts, write_result

    cfg = hydra.compose_config(
        config_name=config_name, overrides=overrides, with_log_configuration=True, run_mode=RunMode.MULTIRUN
    )
    callbacks = Callbacks(cfg)
    job_overrides = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    assert isinstance(job_overrides, list)
    setup_globals()
    sweep_config = hydra.config_loader.load_sweep_config(cfg, list(job_overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
        sweep_config.hydra.sweep.dir = sweep_dir
    job_starts()
    start = time.time()
    ret = run_job(
        hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    write_result(str(sweep_config.hydra.runtime.output_dir), ret, start, run_id=run_id, number=num)
    _ = ret.return_value  # a failed job raises here, as in Hydra's sweepers: exit code 1
    return [[ret]]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    import importlib

    entry: Any = importlib.import_module(ENTRY_MODULE)  # this file runs as __main__: set the module's own name
    entry.running = args
    from hydra._internal.hydra import Hydra

    def multirun(
        self: Any, config_name: Optional[str], task_function: Any, overrides: List[str], with_log_configuration: bool = True
    ) -> Any:
        return run_one_job(self, config_name, task_function, overrides, args.num, args.sweep_dir, args.run_id)

    def get_mode(self: Any, config_name: Optional[str], overrides: List[str]) -> Any:
        from hydra.types import RunMode

        return RunMode.MULTIRUN

    Hydra.multirun = multirun  # type: ignore[method-assign]  # the one job instead of a sweep, on purpose
    # Hydra composes the whole config once more only to read `hydra.mode`; a trial's command
    # line has --multirun, which makes every mode a multirun, so it is not composed for that.
    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    # Forked by local mode's server: its plugin registry, if this trial would find the same.
    preload = sys.modules.get("hydra_plugins.vertex_pipelines_launcher._preload")
    if args.program[0] == "-m":
        sys.argv = [args.program[1], *args.app_args]
        if preload is not None:
            preload.restore_plugins()
        runpy.run_module(args.program[1], run_name="__main__", alter_sys=True)
    else:
        script = os.path.abspath(args.program[0])  # as `python script.py` gives since 3.9
        sys.argv = [args.program[0], *args.app_args]
        sys.path[0] = os.path.dirname(script)
        if preload is not None:
            preload.restore_plugins()
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
