"""Launches one sweep batch in the chosen mode and turns trial results into JobReturns."""

import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from pipeline_builder.errors import ConfigError
from pipeline_builder.trials import TrialSpec

from ._planning import FIELD, Batch, app_program, plan_batch

if TYPE_CHECKING:
    from pipeline_builder.fork_server import ForkServer
    from pipeline_builder.local_runner import TaskRun

    from .launcher import VertexPipelinesLauncher

log = logging.getLogger(__name__)

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
RESULT_FILE = "result.json"
PRELOAD = "hydra_plugins.vertex_pipelines_launcher._preload"


class LauncherConfigError(CompactHydraException):
    """A ConfigError, shown by Hydra as its message alone rather than a stack trace."""


class NoTrialValuesError(CompactHydraException):
    """The sweeper needs trial values, and this mode produces none."""


class TrialFailed(Exception):
    """A trial raised, or its process ended without a result; carries the error text."""


def _free_path(directory: Path, stem: str, suffix: str) -> Path:
    """`stem+suffix` in `directory`, or a numbered variant: earlier files are never overwritten."""
    path = directory / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = directory / f"{stem}-{n}{suffix}"
        n += 1
    return path


def write_batch(batch: Batch, **manifest_extra: Any) -> Tuple[Path, Path, Dict[str, Any]]:
    """Compiles pipeline.yaml, writes the manifest beside it and the files the run reads;
    returns both paths and the compiled spec."""
    from pipeline_builder.manifest import manifest_data, manifest_path_for, write_manifest
    from pipeline_builder.pipeline import compile_pipeline_spec, trial_task_names

    batch.sweep_dir.mkdir(parents=True, exist_ok=True)
    pipeline_path = _free_path(batch.sweep_dir, f"pipeline{batch.tag}", ".yaml")
    manifest_path = manifest_path_for(pipeline_path)
    spec = compile_pipeline_spec(batch.sweep, pipeline_path)
    paths = batch.local_paths()
    files = {}
    for uri, data in batch.uploads(paths if batch.mode == "local" else None).items():
        local = Path(paths.local(uri))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        files[uri] = str(local)
    if batch.package is not None:
        files[batch.package.uri] = str(batch.package.local_path)
        if batch.mode == "local":  # where the local run's trials find it
            local = Path(paths.local(batch.package.uri))
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(batch.package.local_path, local)
    data = manifest_data(
        batch.sweep,
        pipeline_path,
        mode=batch.mode,
        initial_job_idx=batch.initial_job_idx,
        files=files,
        **manifest_extra,
    )
    names = trial_task_names(spec)
    for trial in data["trials"]:
        trial["task_name"] = names.get(trial["output_uri"])
    write_manifest(manifest_path, data)
    return pipeline_path, manifest_path, spec


def submit_hint(config: DictConfig) -> str:
    """The command that runs the same sweep on Vertex AI."""
    argv = [a for a in sys.argv[1:] if not a.startswith(f"{FIELD}.mode=")]
    program = app_program("python", str(config.hydra.runtime.cwd))
    return shlex.join([*program, *argv, f"{FIELD}.mode=submit"])


def settle(ret: JobReturn, trial: TrialSpec, result: Optional[Dict[str, Any]], missing: str) -> JobReturn:
    """Sets a JobReturn's status and value from the trial's result record; `missing` says
    why there is none (local mode and submit mode both end here)."""
    where = f"trial {trial.number} ({' '.join(trial.overrides) or 'no overrides'})"
    status = (result or {}).get("status")
    if result is None or status not in ("COMPLETED", "FAILED"):
        ret.status = JobStatus.FAILED
        ret._return_value = TrialFailed(f"{where} left no {RESULT_FILE}: {missing}")
    elif status == "COMPLETED":
        ret.status = JobStatus.COMPLETED
        ret._return_value = result.get("return_value")
    else:
        ret.status = JobStatus.FAILED
        ret._return_value = TrialFailed(f"{where} failed:\n{result.get('error') or 'no error text'}")
    return ret


def _load(path: Path) -> Optional[DictConfig]:
    try:
        loaded = OmegaConf.load(path)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, DictConfig) else None


def trial_return(config: DictConfig, trial: TrialSpec, local_dir: Path, task: Optional["TaskRun"]) -> JobReturn:
    """A trial's JobReturn from what it left on disk; a missing result is a failure, with why."""
    hydra_dir = local_dir / str(config.hydra.output_subdir or ".hydra")
    cfg = _load(hydra_dir / "config.yaml")
    hydra_cfg = _load(hydra_dir / "hydra.yaml")
    ret = JobReturn(
        overrides=list(trial.overrides),
        cfg=cfg,
        hydra_cfg=hydra_cfg,
        working_dir=str(local_dir),
        task_name=str(hydra_cfg.hydra.job.name) if hydra_cfg is not None else str(config.hydra.job.name),
    )
    try:
        result: Optional[Dict[str, Any]] = json.loads((local_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    if result is not None:
        ret.working_dir = result.get("working_dir") or ret.working_dir
        return settle(ret, trial, result, "")
    if task is None:
        reason = "its task did not run"
    elif task.error:
        reason = task.error
    else:
        from pipeline_builder.local_runner import tail

        reason = f"its process ended with exit code {task.exit_code}; last lines of {task.log_paths[0]}:\n{tail(task.log_paths[0])}"
    return settle(ret, trial, None, reason)


def start_fork_server(batch: Batch) -> Optional["ForkServer"]:
    """Starts importing Hydra for the trials now, while the pipeline compiles."""
    if batch.fresh_interpreters:
        return None
    from pipeline_builder.fork_server import ForkServer

    return ForkServer(sys.executable, [PRELOAD], batch.cwd, dict(os.environ))


def run_local(config: DictConfig, batch: Batch, spec: Dict[str, Any], server: Optional["ForkServer"]) -> List[JobReturn]:
    """Runs the compiled pipeline on this machine and reads every trial's result."""
    from pipeline_builder.local_runner import LocalRunner

    paths = batch.local_paths()
    # Pickled jobs refer to modules by name: give the trials this process's import path.
    python_path = os.pathsep.join(p for p in sys.path if p)
    runner = LocalRunner(
        spec,
        paths,
        work_dir=batch.sweep_dir / ".vertex_local" / batch.sweep.run_id,
        max_parallel=batch.max_parallel,
        cwd=batch.cwd,
        extra_env={"PYTHONPATH": python_path},
        fork_server=server,
    )
    log.info(f"Running {len(batch.sweep.trials)} trials locally, at most {runner.max_parallel} at once")
    try:
        result = runner.run()
    except KeyboardInterrupt:
        log.warning(
            f"Interrupted: running trials were stopped. Finished trials keep their outputs and "
            f"result.json under {batch.sweep_dir}"
        )
        raise
    by_dir = {t.output_dir: t for t in result.tasks.values() if t.kind == "custom_job"}
    returns = []
    for trial in batch.sweep.trials:
        local_dir = Path(paths.local(trial.output_uri))
        returns.append(trial_return(config, trial, local_dir, by_dir.get(str(local_dir))))
    done = sum(r.status == JobStatus.COMPLETED for r in returns)
    collector = [t for t in result.tasks.values() if t.kind != "custom_job"]
    log.info(f"Local run {batch.sweep.run_id}: {done} of {len(returns)} trials completed")
    for task in collector:
        if task.state != "SUCCEEDED":
            log.warning(f"{task.display_name}: {task.state}: {task.error}")
    for label, path in (("Summary", batch.sweep.summary_path), ("Report", batch.sweep.report_path)):
        local = Path(paths.local(path))
        if local.exists():
            log.info(f"{label}: {local}")
    return returns


def _compile_returns(config: DictConfig, batch: Batch) -> List[JobReturn]:
    return [
        JobReturn(
            overrides=list(t.overrides),
            working_dir=t.output_dir,
            task_name=str(config.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value=None,
        )
        for t in batch.sweep.trials
    ]


def launch(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> Sequence[JobReturn]:
    config = launcher.config
    assert config is not None
    try:
        batch = plan_batch(launcher, job_overrides, initial_job_idx)
    except ConfigError as e:
        raise LauncherConfigError(str(e)) from None
    if batch.mode == "submit":
        from pipeline_builder.vertex import CredentialsError, credentials

        try:
            assert batch.target is not None
            credentials(batch.target)  # fails before anything is written or sent
        except CredentialsError as e:
            raise LauncherConfigError(str(e)) from None
    trials = batch.sweep.trials
    log.info(f"Vertex pipeline {batch.sweep.name}: {len(trials)} trials, run {batch.sweep.run_id}")
    for t in trials:
        log.info(f"\t#{t.number} : {' '.join(filter_overrides(t.overrides))}")
    server = start_fork_server(batch) if batch.mode == "local" else None
    try:
        pipeline_path, manifest_path, spec = write_batch(batch)
    except BaseException:
        if server is not None:
            server.close()
        raise
    log.info(f"Wrote {pipeline_path}")
    log.info(f"Wrote {manifest_path}")

    if batch.mode == "local":
        return run_local(config, batch, spec, server)

    if batch.mode == "submit":
        from . import _submit

        job = _submit.submit(batch, config.hydra.launcher, pipeline_path, manifest_path)
        if config.hydra.launcher.wait:
            _submit.follow(job, batch, config.hydra.launcher, manifest_path)
            return _submit.trial_returns(batch, job, str(config.hydra.job.name), manifest_path)
        return _returns_without_values(config, batch, pipeline_path, "wait=false")

    log.info(f"To run it on Vertex AI: {submit_hint(config)}")
    if batch.package is not None:
        from pipeline_builder.packaging import upload_command

        log.info(
            f"The trials run from {batch.package.local_path}; mode=submit uploads it to {batch.package.uri} "
            f"unless it is there already, or upload it yourself: {upload_command(batch.package)}"
        )
    if batch.pickles or batch.sweep.trials_file:
        log.info(
            f"It reads files written under {batch.sweep_dir} (pickled jobs, the trial list) from "
            f"{batch.sweep.run_root}: mode=submit uploads them, and `python -m pipeline_builder run-local` "
            "puts them where its run reads them"
        )
    return _returns_without_values(config, batch, pipeline_path, "mode=compile")


def _returns_without_values(config: DictConfig, batch: Batch, pipeline_path: Path, why: str) -> List[JobReturn]:
    """Nothing ran (or nothing is awaited): fine for the basic sweeper, an error for sweepers that need values."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    if sweeper != BASIC_SWEEPER:
        raise NoTrialValuesError(
            f"{FIELD}.{why} produces no trial values, and the sweeper {sweeper} needs them "
            f"to choose its next trials. The first batch's pipeline is at {pipeline_path}. "
            f"To get values, use {FIELD}.mode=local, or {FIELD}.mode=submit with {FIELD}.wait=true."
        )
    return _compile_returns(config, batch)
