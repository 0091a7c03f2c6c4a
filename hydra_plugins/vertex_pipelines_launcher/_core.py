"""Launches one sweep batch in the chosen mode: plan, write, then run locally, submit, or stop.

Before anything runs, this launch owns its files: its pipeline.yaml and manifest are
created exclusively (a second launch into the same sweep dir gets pipeline-2.yaml), and a
local run locks the sweep dir (a second local run into it is refused while it runs) and
sets an earlier run's results in its trial folders aside, unread.
"""

import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from hydra_vertex_pipelines.components.sweep_files import RESULT_FILE, SUMMARY_STEM, batch_file
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._commands import app_program
from ._planning import Batch, plan_batch
from ._returns import Evidence, job_return, parse_record
from .config import FIELD

if TYPE_CHECKING:
    from hydra_vertex_pipelines.pipeline_builder.local.fork_server import ForkServer
    from hydra_vertex_pipelines.pipeline_builder.local import TaskRun

    from .launcher import VertexPipelinesLauncher

log = logging.getLogger(__name__)

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
PRELOAD = "hydra_plugins.vertex_pipelines_launcher._preload"


class LauncherConfigError(CompactHydraException):
    """A ConfigError, shown by Hydra as its message alone rather than a stack trace."""


class NoTrialValuesError(CompactHydraException):
    """The sweeper needs trial values, and this mode produces none."""


class Written(NamedTuple):
    batch: Batch  # the batch as written: its summary named after its pipeline file
    pipeline_path: Path
    manifest_path: Path
    spec: Dict[str, Any]


def _claim_file(directory: Path, stem: str, suffix: str) -> Path:
    """Creates `stem+suffix` in `directory`, or the first free numbered variant, atomically:
    two launches never get the same file, and earlier files are never overwritten."""
    n = 1
    while True:
        path = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            n += 1


LOCK_FILE = ".vertex-local.lock"
EARLIER_RUNS = ".earlier-runs"


class SweepDirLock:
    """An exclusive lock on a sweep dir for one local run: a second run into the same dir
    while the first runs is refused, since both would run trials in the same folders."""

    def __init__(self, sweep_dir: Path, run_id: str) -> None:
        import fcntl

        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(sweep_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 200).decode(errors="replace").strip() or "another run"
            os.close(self.fd)
            raise LauncherConfigError(
                f"hydra.sweep.dir={sweep_dir} is in use by {holder}, running in local mode: both runs would "
                "run their trials in the same folders. Nothing was started. Wait for it, or choose another "
                "hydra.sweep.dir (Hydra's default is a new folder per second)."
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"run {run_id} (pid {os.getpid()})".encode())

    def release(self) -> None:
        os.close(self.fd)  # closing drops the lock


def set_earlier_runs_aside(batch: Batch) -> None:
    """Moves what an earlier run of the launcher left in this run's trial folders (its
    result.json and trial logs) to `.earlier-runs/<its run id>/` there: this run never
    reads them, and they are not overwritten. Hydra's own files are Hydra's, as with the
    basic launcher, which runs a job again in the same folder."""
    paths = batch.local_paths()
    for trial in batch.sweep.trials:
        folder = Path(paths.local(trial.output_uri))
        if not folder.is_dir():
            continue
        leftovers = [p for p in folder.iterdir() if p.name == RESULT_FILE or (p.name.startswith("trial") and p.suffix == ".log")]
        if not leftovers:
            continue
        try:
            owner = str(json.loads((folder / RESULT_FILE).read_text(encoding="utf-8")).get("run_id"))
        except (OSError, ValueError, AttributeError):
            owner = f"unknown-{int(time.time())}"
        target = folder / EARLIER_RUNS / owner.replace(os.sep, "_")
        target.mkdir(parents=True, exist_ok=True)
        for path in leftovers:
            os.replace(path, target / path.name)


def write_batch(batch: Batch, **manifest_extra: Any) -> Written:
    """Compiles pipeline.yaml, writes the manifest beside it and the files the run reads."""
    from hydra_vertex_pipelines.pipeline_builder.spec.manifest import manifest_data, manifest_path_for, write_manifest
    from hydra_vertex_pipelines.pipeline_builder.pipeline import compile_pipeline_spec, trial_task_names

    batch.sweep_dir.mkdir(parents=True, exist_ok=True)
    stem = f"pipeline{batch.tag}"
    pipeline_path = _claim_file(batch.sweep_dir, stem, ".yaml")
    tag = pipeline_path.stem[len("pipeline") :]
    # The summary and report follow the pipeline file's name: a second launch into this
    # sweep dir writes summary-2.json rather than over the first one's.
    batch = dataclasses.replace(batch, sweep=dataclasses.replace(batch.sweep, summary_name=batch_file(SUMMARY_STEM, tag, ".json")))
    manifest_path = manifest_path_for(pipeline_path)
    spec = compile_pipeline_spec(batch.sweep, pipeline_path)
    paths = batch.local_paths()
    files = {}
    for uri, data in batch.uploads(paths if batch.mode == "local" else None).items():
        local = Path(paths.local(uri))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        files[uri] = str(local)
    for package in batch.packages:
        files[package.uri] = str(package.local_path)
        if batch.mode == "local":  # where the local run's trials find it
            local = Path(paths.local(package.uri))
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(package.local_path, local)
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
    return Written(batch, pipeline_path, manifest_path, spec)


def submit_hint(config: DictConfig) -> str:
    """The command that runs the same sweep on Vertex AI."""
    argv = [a for a in sys.argv[1:] if not a.startswith(f"{FIELD}.mode=")]
    program = app_program(str(config.hydra.runtime.cwd))
    return shlex.join(["python", *program, *argv, f"{FIELD}.mode=submit"])


def _load(path: Path) -> Optional[DictConfig]:
    try:
        loaded = OmegaConf.load(path)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, DictConfig) else None


def local_return(config: DictConfig, batch: Batch, trial: TrialSpec, task: Optional["TaskRun"]) -> JobReturn:
    """A local trial's JobReturn from what this run's trial left in its folder."""
    from hydra_vertex_pipelines.pipeline_builder.local import exit_reason, tail

    local_dir = Path(batch.local_paths().local(trial.output_uri))
    hydra_dir = local_dir / str(config.hydra.output_subdir or ".hydra")
    hydra_cfg = _load(hydra_dir / "hydra.yaml")
    try:
        record = parse_record((local_dir / RESULT_FILE).read_bytes())
    except OSError:
        record = None
    if task is None:
        evidence = Evidence("its task did not run")
    else:
        log_path = task.log_paths[0] if task.log_paths else None
        reason = task.failure.reason if task.failure is not None else task.error or ""
        if task.exit_code is not None and reason in ("", exit_reason(task.exit_code)):
            reason = f"its process ended with {exit_reason(task.exit_code)}"
        evidence = Evidence(reason or f"its task ended {task.state}", log_path, tail(log_path) if log_path else "")
    return job_return(
        trial,
        record,
        batch.sweep.run_id,
        evidence,
        cfg=_load(hydra_dir / "config.yaml"),
        hydra_cfg=hydra_cfg,
        working_dir=str(local_dir),
        task_name=str(hydra_cfg.hydra.job.name) if hydra_cfg is not None else str(config.hydra.job.name),
    )


def start_fork_server(batch: Batch) -> Optional["ForkServer"]:
    """Starts importing Hydra for the trials now, while the pipeline compiles."""
    if batch.fresh_interpreters:
        return None
    from hydra_vertex_pipelines.pipeline_builder.local.fork_server import ForkServer

    return ForkServer(sys.executable, [PRELOAD], batch.cwd, dict(os.environ))


def run_local(config: DictConfig, batch: Batch, spec: Dict[str, Any], server: Optional["ForkServer"]) -> List[JobReturn]:
    """Runs the compiled pipeline on this machine and reads every trial's result."""
    from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings

    paths = batch.local_paths()
    # Pickled jobs refer to modules by name: give the trials this process's import path.
    python_path = os.pathsep.join(p for p in sys.path if p)
    settings = RunnerSettings(
        paths,
        work_dir=batch.sweep_dir / ".vertex_local" / batch.sweep.run_id,
        max_parallel=batch.max_parallel,
        cwd=batch.cwd,
        extra_env={"PYTHONPATH": python_path},
    )
    runner = LocalRunner(spec, settings, fork_server=server)
    log.info(f"Running {len(batch.sweep.trials)} trials locally, at most {runner.max_parallel} at once")
    try:
        result = runner.run()
    except KeyboardInterrupt:
        log.warning(
            f"Interrupted: running trials were stopped. Finished trials keep their outputs and "
            f"result.json under {batch.sweep_dir}"
        )
        sys.exit(130)  # as a shell reports Ctrl-C, without a traceback
    by_dir = {t.output_dir: t for t in result.tasks.values() if t.kind == "custom_job"}
    returns = [local_return(config, batch, t, by_dir.get(paths.local(t.output_uri))) for t in batch.sweep.trials]
    collector = [t for t in result.tasks.values() if t.kind != "custom_job"]
    log.info(f"Local run {batch.sweep.run_id}: {sum(r.status == JobStatus.COMPLETED for r in returns)} of {len(returns)} trials completed")
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
    import importlib

    trial_entry = importlib.import_module(".trial_entry", __package__)  # the one the entry marked
    if trial_entry.running is not None:
        # The trial re-ran the sweep's command line, and it launched a sweep again rather
        # than reaching Hydra's multirun, which the entry turns into this trial's job.
        raise LauncherConfigError(
            f"trial {trial_entry.running.num} re-ran {' '.join(trial_entry.running.program)}, which launched a sweep "
            f"instead of running its job through @hydra.main: set {FIELD}.trial.entry=pickle for task functions "
            "that a command line does not reach"
        )
    try:
        batch = plan_batch(launcher, job_overrides, initial_job_idx, sys.argv[1:])
    except ConfigError as e:
        raise LauncherConfigError(str(e)) from None
    if batch.mode == "submit":
        from hydra_vertex_pipelines.pipeline_builder.cloud.vertex import CredentialsError, credentials

        try:
            assert batch.target is not None
            credentials(batch.target)  # fails before anything is written or sent
        except CredentialsError as e:
            raise LauncherConfigError(str(e)) from None
    trials = batch.sweep.trials
    log.info(f"Vertex pipeline {batch.sweep.name}: {len(trials)} trials, run {batch.sweep.run_id}")
    for t in trials:
        log.info(f"\t#{t.number} : {' '.join(filter_overrides(t.overrides))}")
    lock = SweepDirLock(batch.sweep_dir, batch.sweep.run_id) if batch.mode == "local" else None
    try:
        return _write_and_run(launcher, batch, lock)
    finally:
        if lock is not None:
            lock.release()


def _write_and_run(launcher: "VertexPipelinesLauncher", batch: Batch, lock: Optional[SweepDirLock]) -> Sequence[JobReturn]:
    config = launcher.config
    assert config is not None
    if lock is not None:
        set_earlier_runs_aside(batch)
    server = start_fork_server(batch) if batch.mode == "local" else None
    try:
        written = write_batch(batch)
    except BaseException:
        if server is not None:
            server.close()
        raise
    pipeline_path, manifest_path = written.pipeline_path, written.manifest_path
    log.info(f"Wrote {pipeline_path}")
    log.info(f"Wrote {manifest_path}")

    batch = written.batch
    if batch.mode == "local":
        return run_local(config, batch, written.spec, server)

    if batch.mode == "submit":
        from . import _submit

        job = _submit.submit(batch, config.hydra.launcher, written)
        if config.hydra.launcher.wait:
            _submit.follow(job, batch, config.hydra.launcher, manifest_path)
            return _submit.trial_returns(launcher, batch, job, written)
        return _returns_without_values(config, batch, pipeline_path, "wait=false")

    log.info(f"To run it on Vertex AI: {submit_hint(config)}")
    if batch.packages:
        from hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel import upload_command

        log.info(
            "The trials run from the wheels under "
            f"{batch.sweep_dir / 'packages'} (this launcher's and the project's); mode=submit uploads each one "
            "the bucket lacks, or upload them yourself: " + " && ".join(upload_command(p) for p in batch.packages)
        )
    if batch.pickles or batch.sweep.trials_file:
        log.info(
            f"It reads files written under {batch.sweep_dir} (pickled jobs, the trial list) from "
            f"{batch.sweep.run_root}: mode=submit uploads them, and `hydra-vertex-pipelines run-local` "
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
