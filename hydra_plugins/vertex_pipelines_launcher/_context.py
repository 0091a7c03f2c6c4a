"""What a launch takes from Hydra, read once and passed down as values.

As in Hydra's own launchers, the launcher object stays at the top: the steps below get
the sweep's config, Hydra's context and the task function, and the few facts of the
sweep they need, never the object that holds them.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

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
        )
