"""What a launch takes from Hydra, read once and passed down as values.

As in Hydra's own launchers, the launcher object stays at the top: the steps below get
the sweep's config, Hydra's context and the task function, and the few facts of the
sweep they need, never the object that holds them.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class LaunchContext:
    config: DictConfig  # the sweep's config, as Hydra hands it to a launcher
    hydra_context: HydraContext
    task_function: TaskFunction
    argv: Tuple[str, ...]  # the sweep's command line after the program
    app_name: str  # hydra.job.name
    cwd: str  # hydra.runtime.cwd: where the sweep was started
    sweep_dir: Path  # hydra.sweep.dir, absolute
    output_subdir: str  # hydra.output_subdir: where a job keeps its Hydra files
    sweeper: Optional[str]  # the sweeper's _target_
    from_command_line: bool  # started by Hydra's command-line entry from this process's sys.argv

    @classmethod
    def read(cls, config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction) -> "LaunchContext":
        return cls(
            config=config,
            hydra_context=hydra_context,
            task_function=task_function,
            argv=tuple(sys.argv[1:]),
            app_name=str(config.hydra.job.name),
            cwd=str(config.hydra.runtime.cwd),
            sweep_dir=Path(str(config.hydra.sweep.dir)).resolve(),
            output_subdir=str(config.hydra.output_subdir or ".hydra"),
            sweeper=OmegaConf.select(config, "hydra.sweeper._target_"),
            from_command_line=started_from_command_line(sys.argv[1:]),
        )


def started_from_command_line(argv: Sequence[str]) -> bool:
    """Whether this launch runs inside Hydra's command-line entry (`@hydra.main` calls
    `_run_hydra` with what it parsed from `sys.argv`), found on the calling stack.

    Only such a sweep can be started again by its command line; `hydra_zen.launch`,
    `hydra.compose` with a Launcher, notebooks and tests compose theirs in Python.
    """
    from hydra._internal.utils import _run_hydra

    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not _run_hydra.__code__:
        frame = frame.f_back  # type: ignore[assignment]
    return frame is not None and _parsed_from(frame.f_locals.get("args"), argv)


def _parsed_from(args: Any, argv: Sequence[str]) -> bool:
    """Whether Hydra's parsed arguments are `argv` read by Hydra's own parser (Hydra
    appends `hydra.mode=...` to the overrides it parsed)."""
    from hydra._internal.utils import get_args_parser

    try:
        ours = get_args_parser().parse_args(list(argv))
    except SystemExit:
        return False
    keys = ("config_path", "config_name", "config_dir", "multirun")
    given = list(getattr(args, "overrides", None) or [])
    return all(getattr(args, k, None) == getattr(ours, k) for k in keys) and given[: len(ours.overrides)] == ours.overrides
