"""Launches one sweep batch: read what Hydra gave once, plan, then hand the plan to its mode.

Each mode (compile, local, submit) is one module with one entry point, `run(context,
batch)`, which writes the batch's files and returns one JobReturn per trial.
"""

import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError

from . import _compile, _local, _submit
from ._choices import FIELD, Mode
from ._context import LaunchContext
from ._errors import LauncherConfigError
from ._local import WarmStart
from ._planning import Batch, plan_batch

ModeRun = Callable[[LaunchContext, Batch], List[JobReturn]]
MODES: Dict[Mode, ModeRun] = {Mode.COMPILE: _compile.run, Mode.LOCAL: _local.run, Mode.SUBMIT: _submit.run}


def _running_trial() -> Any:
    """The trial this process runs, if it is one (what the trial entry marked)."""
    return importlib.import_module(".trial_entry", __package__).running


def _refuse_a_sweep_inside_a_trial() -> None:
    """A trial re-ran the sweep's command line, and it launched a sweep again rather than
    reaching Hydra's multirun, which the trial entry turns into this trial's job."""
    running = _running_trial()
    if running is not None:
        raise LauncherConfigError(
            f"trial {running.num} re-ran {' '.join(running.program)}, which launched a sweep "
            f"instead of running its job through @hydra.main: set {FIELD}.trial.entry=pickle for task functions "
            "that a command line does not reach"
        )


def prepare(config: DictConfig) -> Optional[WarmStart]:
    """When Hydra sets the launcher up: what can start before the first launch (local
    mode's fork server), so that it works while Hydra checks every job of the sweep."""
    return None if _running_trial() is not None else _local.warm_start(config)


def launch(
    *,
    config: DictConfig,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    warm: Optional[WarmStart] = None,
) -> Sequence[JobReturn]:
    """One batch; `warm` is what `prepare` started: a local run takes it, else it is closed."""
    try:
        _refuse_a_sweep_inside_a_trial()
        context = LaunchContext.read(config, hydra_context, task_function)
        try:
            batch = plan_batch(context, job_overrides, initial_job_idx)
        except ConfigError as e:
            raise LauncherConfigError(str(e)) from None
        if batch.mode is Mode.LOCAL:
            return _local.run(context, batch, warm)
        return MODES[batch.mode](context, batch)
    finally:
        if warm is not None:
            warm.close_unless_taken()
