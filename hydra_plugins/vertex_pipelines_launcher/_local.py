"""Local mode: run the compiled pipeline.yaml on this machine and read every trial's result.

A local run locks its sweep dir (a second local run into it is refused while it runs) and
sets an earlier run's results in its trial folders aside, unread, before it writes.
"""

import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from hydra_vertex_pipelines.components.sweep_files import SweepFiles, TrialFiles
from hydra_vertex_pipelines.components.trial_result import parse_record
from hydra_vertex_pipelines.pipeline_builder.recovery.summary import (
    failure_counts,
    read_summary,
    rewrite_with_failures,
    summary_usage_text,
)
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._choices import Mode
from ._commands import PICKLE_ENTRY
from ._context import LaunchContext
from ._errors import LauncherConfigError
from ._local_watch import RunWatch, lap, log_phases
from ._planning import Batch
from ._returns import Evidence, job_return, saved_configs, trial_failure
from ._writing import announce, write_batch
from .trial_entry import ENTRY_MODULE

if TYPE_CHECKING:
    from hydra_vertex_pipelines.pipeline_builder.local import CheckCache, CustomJobChecker, ForkServer, PhaseClock, TaskRun

log = logging.getLogger(__name__)

PRELOAD = "hydra_plugins.vertex_pipelines_launcher._preload"
# The trial entries, which tell the fork server when Hydra has composed their job's config.
ENTRIES = (ENTRY_MODULE, PICKLE_ENTRY)


class SweepDirLock:
    """An exclusive lock on a sweep dir for one local run: a second run into the same dir
    while the first runs is refused, since both would run trials in the same folders."""

    def __init__(self, sweep_dir: Path, run_id: str) -> None:
        import fcntl

        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(SweepFiles(sweep_dir).lock, os.O_RDWR | os.O_CREAT, 0o644)
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
    .vertex/result.json and trial logs) to `.vertex/earlier-runs/<its run id>/` there: this
    run never reads them, and they are not overwritten. Only the launcher's `.vertex/` is
    touched: the app's files and Hydra's are theirs, as with the basic launcher, which runs
    a job again in the same folder."""
    paths = batch.local_paths()
    for trial in batch.sweep.trials:
        files = TrialFiles(Path(paths.local(trial.output_uri)))
        if not files.launcher_folder.is_dir():
            continue
        leftovers = [p for p in files.launcher_folder.iterdir() if p.is_file() and TrialFiles.is_run_output(p.name)]
        if not leftovers:
            continue
        try:
            owner = str(json.loads(files.result.read_text(encoding="utf-8")).get("run_id"))
        except (OSError, ValueError, AttributeError):
            owner = f"unknown-{int(time.time())}"
        target = files.earlier_run(owner)
        target.mkdir(parents=True, exist_ok=True)
        for path in leftovers:
            os.replace(path, target / path.name)


def _evidence(task: Optional["TaskRun"]) -> Evidence:
    """How the runner saw the trial's task end."""
    from hydra_vertex_pipelines.pipeline_builder.local import exit_reason, tail

    if task is None:
        return Evidence("its task did not run")
    log_path = task.log_paths[0] if task.log_paths else None
    failure = task.failure
    reason = failure.reason if failure is not None else task.error or ""
    if task.exit_code is not None and reason in ("", exit_reason(task.exit_code)):
        reason = f"its process ended with {exit_reason(task.exit_code)}"
    job_error = failure.job_error if failure is not None else None
    launcher_error = (None, failure.reason) if failure is not None and job_error is None else None
    return Evidence(
        reason or f"its task ended {task.state}",
        log_path,
        tail(log_path) if log_path else "",
        job_error=job_error,
        launcher_error=launcher_error,
        task_state=str(task.state),
    )


def _record(batch: Batch, trial: TrialSpec) -> Any:
    try:
        return parse_record(TrialFiles(Path(batch.local_paths().local(trial.output_uri))).result.read_bytes())
    except OSError:
        return None


def local_return(context: LaunchContext, batch: Batch, trial: TrialSpec, record: Any, evidence: Evidence) -> JobReturn:
    """A local trial's JobReturn from what this run's trial left in its folder: its
    config.yaml and hydra.yaml are read when first asked for."""
    local_dir = Path(batch.local_paths().local(trial.output_uri))
    return job_return(
        trial,
        record,
        batch.sweep.run_id,
        evidence,
        cfg=None,
        hydra_cfg=None,
        working_dir=str(local_dir),
        task_name=context.app_name,
        compose=functools.partial(saved_configs, local_dir / context.output_subdir),
        named_by_config=True,
        rules=batch.failure_rules,
    )


class Helpers(NamedTuple):
    """What a local run starts before its pipeline is compiled, and ends after it ran."""

    server: Optional["ForkServer"]  # None: fresh interpreters
    checker: "CustomJobChecker"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.checker.close()


def check_cache(batch: Batch) -> Optional["CheckCache"]:
    """The stored CustomJob check verdicts, keyed without this run's own values (its run id
    and sweep dir); None when turned off."""
    from hydra_vertex_pipelines.pipeline_builder.local import CheckCache, cache_folder, sweep_signature

    folder = cache_folder()
    if folder is None:
        return None
    volatile = [batch.sweep.run_id, str(batch.sweep_dir.resolve()), str(batch.sweep_dir)]
    sweep = sweep_signature([t.custom_job_inputs() for t in batch.sweep.trials], volatile)
    return CheckCache(folder, volatile, sweep)


def _fork_server(cwd: str, env: Dict[str, str]) -> "ForkServer":
    """The fork server of a local run: Hydra imported for the trials, which tell it when
    their start-up is over."""
    from hydra_vertex_pipelines.pipeline_builder.local import ForkServer

    return ForkServer(sys.executable, [PRELOAD], cwd, env, custom_jobs=False, tells_start=ENTRIES)


class WarmStart:
    """The fork server of a local run with forked trials, started when Hydra sets the
    launcher up: its imports then run while Hydra composes and checks every job of the
    sweep, before the first launch. That launch takes it (`take`) or closes it."""

    def __init__(self, cwd: str, env: Dict[str, str]) -> None:
        self.server = _fork_server(cwd, env)
        self.cwd, self.env = cwd, env
        self.taken = False

    def take(self, cwd: str, env: Dict[str, str]) -> Optional["ForkServer"]:
        """The server, for a launch in `cwd` with `env`; closed (None) if it does not fit."""
        self.taken = True
        if (cwd, env) == (self.cwd, self.env):
            log.debug("Local run: the fork server started when Hydra set the launcher up")
            return self.server
        self.server.close()
        return None

    def close_unless_taken(self) -> None:
        if not self.taken:
            self.taken = True
            self.server.close()


def warm_start(config: DictConfig) -> Optional[WarmStart]:
    """The fork server, started now, when the sweep's settings ask for forked local trials
    (a setting that is wrong is reported by the launch, as always)."""
    settings = OmegaConf.select(config, "hydra.launcher")
    if not isinstance(settings, DictConfig) or settings.get("mode") != Mode.LOCAL.value:
        return None
    if settings.get("fresh_interpreters") is not False:
        return None
    return WarmStart(str(config.hydra.runtime.cwd), dict(os.environ))


def start_helpers(batch: Batch, warm: Optional[WarmStart] = None) -> Helpers:
    """Starts what does not depend on the compiled file, so that it works while the pipeline
    compiles: the fork server importing Hydra for the trials (`warm`'s, if it fits), the
    CustomJob checker's helper (unless every verdict is expected from its cache) and the
    reaper."""
    from hydra_vertex_pipelines.pipeline_builder.local import CustomJobChecker, Reaper

    fresh = batch.fresh_interpreters
    server = warm.take(batch.cwd, dict(os.environ)) if warm is not None and not fresh else None
    checker = None
    try:
        # The checker first: a trial's check comes before its fork, and its imports take longer.
        cache = check_cache(batch)
        checker = CustomJobChecker(sys.executable, cache=cache, eager=cache is None or not cache.expects_hits())
        if server is None and not fresh:
            server = _fork_server(batch.cwd, dict(os.environ))
        Reaper.shared()
    except BaseException:
        if checker is not None:
            checker.close()
        if server is not None:
            server.close()
        raise
    return Helpers(server, checker)


def concurrency(asked: Optional[int], limit: int) -> str:
    """Says how many trials run at once and where that number came from."""
    from hydra_vertex_pipelines.pipeline_builder.local import cpu_count

    cpus = cpu_count()
    if asked is None:
        return f"at most {limit} at once (one per CPU; hydra.launcher.max_parallel sets another limit)"
    if asked > cpus:
        return f"at most {limit} at once (hydra.launcher.max_parallel; more than this machine's {cpus} CPUs, which CPU-bound trials share)"
    return f"at most {limit} at once (hydra.launcher.max_parallel)"


def run_pipeline(
    context: LaunchContext, batch: Batch, spec: Dict[str, Any], helpers: Helpers, clock: "PhaseClock"
) -> List[JobReturn]:
    """Runs the compiled pipeline on this machine and reads every trial's result."""
    from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings, TaskKind, TaskState

    paths = batch.local_paths()
    # Pickled jobs refer to modules by name: give the trials this process's import path.
    python_path = os.pathsep.join(p for p in sys.path if p)
    settings = RunnerSettings(
        paths,
        work_dir=SweepFiles(batch.sweep_dir).local_run(batch.sweep.run_id),
        max_parallel=batch.max_parallel,
        cwd=batch.cwd,
        extra_env={"PYTHONPATH": python_path},
    )
    watch = RunWatch(clock)
    runner = LocalRunner(spec, settings, fork_server=helpers.server, custom_job_checker=helpers.checker, on_change=watch)
    log.info(f"Running {len(batch.sweep.trials)} trials locally, {concurrency(batch.max_parallel, runner.max_parallel)}")
    try:
        result = runner.run()
        watch.ended()
    except KeyboardInterrupt:
        log.warning(
            f"Interrupted: running trials were stopped. Finished trials keep their outputs and "
            f"{TrialFiles.RECORD} under {batch.sweep_dir}"
        )
        sys.exit(130)  # as a shell reports Ctrl-C, without a traceback
    by_dir = {t.output_dir: t for t in result.tasks.values() if t.kind == TaskKind.CUSTOM_JOB}
    outcomes = [(t, _record(batch, t), _evidence(by_dir.get(paths.local(t.output_uri)))) for t in batch.sweep.trials]
    returns = [local_return(context, batch, t, record, evidence) for t, record, evidence in outcomes]
    failures = {
        t.number: f
        for t, record, evidence in outcomes
        if (f := trial_failure(t, record, batch.sweep.run_id, evidence, None, batch.failure_rules))
    }
    collector = [t for t in result.tasks.values() if t.kind != TaskKind.CUSTOM_JOB]
    for task in collector:
        if task.state != TaskState.SUCCEEDED:
            log.warning(f"{task.display_name}: {task.state}: {task.error}")
    if failures:
        log.info(f"Failed trials by kind: {failure_counts(failures)}")
        report = paths.local(batch.sweep.report_path)
        rewrite_with_failures(Path(paths.local(batch.sweep.summary_path)), Path(report), os.path.dirname(report), failures)
    for label, path in (("Summary", batch.sweep.summary_path), ("Report", batch.sweep.report_path)):
        local = Path(paths.local(path))
        if local.exists():
            log.info(f"{label}: {local}")
    completed = sum(r.status == JobStatus.COMPLETED for r in returns)
    hours = summary_usage_text(read_summary(Path(paths.local(batch.sweep.summary_path))))
    log.info(f"Local run {batch.sweep.run_id}: {completed} of {len(returns)} trials completed{hours}")
    return returns


def run(context: LaunchContext, batch: Batch, warm: Optional[WarmStart] = None) -> List[JobReturn]:
    """Local mode: lock the sweep dir, write, run on this machine, read the results.
    `warm` is taken by the run's helpers; the caller closes it if they never came to it."""
    from hydra_vertex_pipelines.pipeline_builder.local import PhaseClock

    clock = PhaseClock()
    announce(batch)
    lock = SweepDirLock(batch.sweep_dir, batch.sweep.run_id)
    try:
        set_earlier_runs_aside(batch)
        helpers = start_helpers(batch, warm)
        lap(clock, "start helpers")
        try:
            written = write_batch(batch)
            lap(clock, "compile")
            if written.from_cache:
                log.debug(f"Local run: {written.pipeline_path.name} from the compile cache, as compiling gave it before")
            returns = run_pipeline(context, written.batch, written.spec, helpers, clock)
        finally:
            helpers.close()
        lap(clock, "results")
        log_phases(clock, helpers.server, helpers.checker)
        return returns
    finally:
        lock.release()
