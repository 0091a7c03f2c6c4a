"""Submit mode: send the compiled pipeline to Vertex AI, follow it, bring the results back."""

import dataclasses
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from hydra_vertex_pipelines.components.failures import Failure
from hydra_vertex_pipelines.components.sweep_files import SweepFiles, TrialFiles
from hydra_vertex_pipelines.components.trial_result import ENDINGS, parse_record, record_problem
from hydra_vertex_pipelines.pipeline_builder.cloud import TaskDetailState, gcs, vertex
from hydra_vertex_pipelines.pipeline_builder.cloud.failures import CustomJobErrors, task_failure
from hydra_vertex_pipelines.pipeline_builder.cloud.progress import counts_line, trial_counts
from hydra_vertex_pipelines.pipeline_builder.command_name import command_name
from hydra_vertex_pipelines.pipeline_builder.live import RELOAD_S, LiveReport, RunView
from hydra_vertex_pipelines.pipeline_builder.live import not_before as record_not_before
from hydra_vertex_pipelines.pipeline_builder.recovery import (
    Recovery,
    Round,
    publish,
    submit_job,
    upload_run_files,
    with_run_usage,
)
from hydra_vertex_pipelines.pipeline_builder.recovery.summary import (
    failure_counts,
    rewrite,
    rewrite_with_failures,
    summary_usage_text,
)
from hydra_vertex_pipelines.pipeline_builder.spec.manifest import add_job
from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._compose import compose_job
from ._context import LaunchContext
from ._errors import FollowingLost, LauncherConfigError
from ._planning import Batch
from ._recovery import attempt_batch, to_round
from ._resume import RERUN_LABEL, rerun_lost_results
from ._returns import Evidence, job_return, needs_job_error, returns_without_values, trial_failure
from ._settings import SubmitSettings
from ._writing import Written, announce, job_settings, write_batch

log = logging.getLogger(__name__)


def upload_files(written: Written, target: vertex.VertexTarget, storage: Any) -> None:
    """Puts what the run reads from its bucket there before it starts: the files its
    manifest lists, as `hydra-vertex-pipelines submit` does for a compiled sweep."""
    batch = written.batch
    done = upload_run_files(storage, written.manifest.get("files") or {}, batch.sweep.pipeline_root, target.location)
    if done.run_files:
        log.info(f"Uploaded {done.run_files} files under {batch.sweep.run_root}")
    for uri in done.wheels:
        log.info(f"Uploaded {uri} (the trials install it)")
    for uri in done.wheels_present:
        log.info(f"Already in the bucket, not uploaded again: {uri}")


def submit(written: Written, settings: SubmitSettings) -> Any:
    """Creates the PipelineJob (exactly once) from this launch's own pipeline file and
    records it in the manifest."""
    batch = written.batch
    target = settings.target
    creds = vertex.credentials(target)
    storage = gcs.client(target.project, None if target.emulated else creds)
    upload_files(written, target, storage)
    vertex.init(target, creds)
    job = submit_job(
        target,
        written.pipeline_path,
        batch.job_id or batch.sweep.run_id,
        batch.sweep.pipeline_root,
        job_settings(batch),
        written.manifest_path,
        written.manifest,
        on_retry=lambda e: log.warning(f"Creating the PipelineJob failed ({type(e).__name__}: {e}); retrying"),
    )
    log.info(f"Submitted {job.resource_name}")
    log.info(f"View it in the Vertex AI console: {vertex.console_url(job.resource_name, target.api_endpoint)}")
    return job


class Progress:
    """Trials succeeded, failed and running, and the best value so far: a bar on a terminal,
    log lines otherwise. With a live report, each poll refreshes it first."""

    def __init__(self, trial_tasks: Dict[str, int], total: int, live: Optional[LiveReport] = None) -> None:
        self.trial_tasks = trial_tasks
        self.total = total
        self.live = live
        self.last = ""
        self.tty = sys.stderr.isatty()

    def best(self, state: str, tasks: Dict[str, Dict[str, Any]]) -> str:
        """The live report refreshed, and its best value so far ("" without one)."""
        return self.live.best_after(state, tasks, log.warning) if self.live is not None else ""

    def __call__(self, state: str, tasks: Dict[str, Dict[str, Any]]) -> None:
        counts = trial_counts(tasks, self.trial_tasks)
        total = self.total
        done = counts[TaskDetailState.SUCCEEDED] + counts[TaskDetailState.FAILED]
        best = self.best(state, tasks)
        line = f"{state.replace('PIPELINE_STATE_', '').lower()}: {counts_line(counts, total)}" + (f"; {best}" if best else "")
        if self.tty:
            width = 30
            bar = "#" * (width * done // max(total, 1))
            sys.stderr.write(f"\r[{bar:<{width}}] {line}   ")
            sys.stderr.flush()
        elif line != self.last:
            log.info(line)
        self.last = line

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def live_report(job: Any, written: Written, settings: SubmitSettings) -> LiveReport:
    """The sweep dir's report.html, kept up to date while the run is followed."""
    batch = written.batch
    target = settings.target
    storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
    path = SweepFiles(batch.sweep_dir, batch.sweep.tag).report
    view = RunView.of_sweep(batch.sweep, written.task_names)
    return LiveReport(view, storage, path, attempt_started(job, batch), reload_s=max(settings.poll_interval, RELOAD_S))


def reattach_hint(job: Any, sweep_dir: Path, api_endpoint: Optional[str]) -> str:
    cmd = command_name()  # as this terminal can run it
    return (
        f"The run goes on in Vertex AI: {vertex.console_url(job.resource_name, api_endpoint)}\n"
        f"  follow it again:  {cmd} status {sweep_dir} --wait\n"
        f"  its results:      {cmd} results {sweep_dir}\n"
        f"  recover it:       {cmd} recover {sweep_dir}   (runs again the trials that failed for "
        "the cloud's reasons, once it ends)\n"
        f"  cancel it:        {cmd} cancel {sweep_dir}"
    )


def follow(job: Any, written: Written, settings: SubmitSettings) -> str:
    """Follows the run. Ctrl-C, or Vertex out of reach for `reconnect_timeout`, leaves it
    going and says how to re-attach or cancel, without a traceback."""
    batch = written.batch
    trial_tasks = {name: number for number, name in written.task_names.items()}
    live = live_report(job, written, settings) if settings.live_report else None
    progress = Progress(trial_tasks, len(batch.sweep.trials), live)

    def outage(e: Exception) -> None:
        log.warning(
            f"Vertex AI cannot be reached ({type(e).__name__}); trying again for up to {settings.reconnect_timeout:.0f} s"
        )

    try:
        state = vertex.follow(job, settings.poll_interval, progress, settings.reconnect_timeout, outage)
    except KeyboardInterrupt:
        progress.close()
        log.warning(f"Stopped following. {reattach_hint(job, batch.sweep_dir, settings.target.api_endpoint)}")
        sys.exit(130)
    except vertex.ConnectionLost as e:
        progress.close()
        raise FollowingLost(f"Stopped following: {e}\n{reattach_hint(job, batch.sweep_dir, settings.target.api_endpoint)}") from None
    progress.close()
    log.info(f"PipelineJob {job.resource_name.rsplit('/', 1)[-1]} of run {batch.sweep.run_id} ended: {state}")
    return state


def _record(row: Optional[Dict[str, Any]]) -> Any:
    """A summary row as the result record it was read from (None: the collector had none)."""
    if row is None or row.get("status") not in ENDINGS:
        return None
    return {"number": row.get("number"), **row}


def _job_configs(context: LaunchContext, trial: TrialSpec) -> Tuple[Optional[DictConfig], Optional[DictConfig]]:
    """The job's config and Hydra config as the basic launcher composes them (the trial
    ran elsewhere): what its JobReturn holds."""
    try:
        job_config = compose_job(context, trial.overrides, trial.number)
    except Exception:  # the trial's own failure says why; the values need no config
        return None, None
    hydra_cfg = OmegaConf.create({"hydra": job_config.hydra})
    with_hydra = OmegaConf.to_container(job_config, resolve=False)
    assert isinstance(with_hydra, dict)
    with_hydra.pop("hydra", None)
    return OmegaConf.create(with_hydra), hydra_cfg


def _download_summary(storage: Any, batch: Batch) -> Optional[Dict[str, Any]]:
    """The collector's summary (and report), copied into the sweep dir, if it wrote one,
    with the machine-hours of the run's CustomJobs (one list of them)."""
    summary = gcs.read_json(storage, batch.sweep.files.summary)
    if summary is not None:  # every PipelineJob of this run, a resumed one's earlier ones included
        summary = with_run_usage(summary, batch.sweep)
        local = SweepFiles(batch.sweep_dir, batch.sweep.tag)
        rewrite(summary, local.summary, local.report, os.path.dirname(batch.sweep.report_path))
        log.info(f"Summary: {local.summary}")
        log.info(f"Report: {local.report}")
    return summary


def trial_returns(
    context: LaunchContext, written: Written, target: vertex.VertexTarget, job: Any
) -> Tuple[List[JobReturn], Optional[Dict[str, Any]], Dict[int, Failure]]:
    """Each trial's JobReturn: one read of the collector's summary, else each .vertex/result.json;
    a result of another run or attempt is none, and a trial without one carries Vertex's
    error for its task. Also the summary, if the collector wrote one, and the failed trials' failures."""
    batch = written.batch
    storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
    summary = _download_summary(storage, batch)
    rows = {int(r["number"]): r for r in summary["trials"]} if summary else {}
    tasks = vertex.task_details(job)
    created = attempt_started(job, batch)
    job_errors = CustomJobErrors(tasks)
    returns, failures = [], {}
    for trial in batch.sweep.trials:
        record = _record(rows.get(trial.number))
        if record is None:  # no summary row: the collector did not run or failed
            record = parse_record(gcs.read_bytes(storage, TrialFiles(trial.output_uri).result))
        task_name = written.task_names.get(trial.number, "")
        task = tasks.get(task_name, {})
        # In a resumed run, a trial that ran again (not a cache hit) must have a new record.
        not_before = record_not_before(created, bool(task_name), task.get("state"))
        unrecorded = record_problem(record, batch.sweep.run_id, trial.number, not_before) is not None
        failed = needs_job_error(record, batch.sweep.run_id, trial.number, not_before)
        job_error = job_errors.of(trial.display_name, task if task_name else None) if failed else None
        if task.get("state"):
            reason = f"its task ended {task['state']}" + (f": {task['error']}" if task.get("error") else "")
        elif not task_name and unrecorded:
            reason = f"its CustomJob failed: {job_error[1]}" if job_error else "its CustomJob left no error"
        else:
            reason = "its task never ran"
        row = rows.get(trial.number) or {}
        # Against the emulator (no Cloud Logging), the trial's own log in its folder.
        log_path = row.get("log_url") or row.get("console_url") or (TrialFiles(trial.output_uri).log if target.emulated else None)
        evidence = Evidence(
            reason, log_path, job_error=job_error, launcher_error=task_failure(task), task_state=task.get("state")
        )
        failure = trial_failure(trial, record, batch.sweep.run_id, evidence, not_before, batch.failure_rules)
        if failure is not None:
            failures[trial.number] = failure
        returns.append(
            job_return(
                trial,
                record,
                batch.sweep.run_id,
                evidence,
                working_dir=trial.output_uri,
                task_name=context.app_name,
                not_before=not_before,
                cfg=None,
                hydra_cfg=None,
                compose=functools.partial(_job_configs, context, trial),
                rules=batch.failure_rules,
            )
        )
    if failures:
        log.info(f"Failed trials by kind: {failure_counts(failures)}")
        _save_failures(storage, batch, failures)
    return returns, summary, failures


def _save_failures(storage: Any, batch: Batch, failures: Dict[int, Failure]) -> None:
    """The summary and report, in the sweep dir and the bucket, with each failed trial's kind."""
    files = SweepFiles(batch.sweep_dir, batch.sweep.tag)
    summary = rewrite_with_failures(files.summary, files.report, os.path.dirname(batch.sweep.report_path), failures)
    if summary is not None:
        gcs.write_bytes(storage, batch.sweep.files.summary, files.summary.read_bytes())
        if files.report.exists():
            gcs.write_bytes(storage, batch.sweep.files.report, files.report.read_bytes())


def attempt_started(job: Any, batch: Batch) -> Optional[float]:
    """When this PipelineJob was created, if it resumes an earlier run (epoch seconds): a
    record older than that is an earlier attempt's."""
    return job.gca_resource.create_time.timestamp() if resumed(batch) else None


def resumed(batch: Batch) -> bool:
    """Whether this batch resumes an earlier run (a new PipelineJob in its folders)."""
    return batch.job_id not in ("", batch.sweep.run_id)


def rerun_lost_trials(batch: Batch, target: vertex.VertexTarget) -> Batch:
    """A resumed batch whose trials without a result.json in the bucket run again: their
    earlier success is still in Vertex's cache, which would skip them with nothing to read."""
    from google.api_core.exceptions import NotFound

    storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
    try:
        stored = set(gcs.list_uris(storage, batch.sweep.run_root))
    except NotFound:  # the bucket is gone: every trial runs again
        stored = set()
    trials, lost = rerun_lost_results(batch.sweep.trials, stored, batch.job_id)
    if not lost:
        return batch
    names = ", ".join(f"{t.number} ({' '.join(t.overrides) or 'no overrides'})" for t in lost)
    log.warning(
        f"Resuming: {len(lost)} of {len(trials)} trials run again, as their {TrialFiles.RECORD} is not under "
        f"{batch.sweep.run_root} (removed?), and Vertex's cache would skip a trial that succeeded before without "
        f"bringing its result back: trial {names}. Their CustomJobs carry the label {RERUN_LABEL}, which gives "
        "them a cache key of their own."
    )
    return dataclasses.replace(batch, sweep=dataclasses.replace(batch.sweep, trials=trials))


def run(context: LaunchContext, batch: Batch) -> List[JobReturn]:
    """Submit mode: write, submit, and (with `wait`) follow the run and read its results."""
    settings = batch.submit
    assert settings is not None  # planned in submit mode
    try:
        vertex.credentials(settings.target)  # fails before anything is written or sent
    except vertex.CredentialsError as e:
        raise LauncherConfigError(str(e)) from None
    if resumed(batch):
        batch = rerun_lost_trials(batch, settings.target)
    announce(batch)
    written = write_batch(batch)
    job = submit(written, settings)
    if not settings.wait:
        log.info(reattach_hint(job, written.batch.sweep_dir, settings.target.api_endpoint))
        if settings.recovery.max_attempts > 1:
            log.info(f"recover uses the sweep's recovery settings (max_attempts={settings.recovery.max_attempts})")
        return returns_without_values(context, written.batch.sweep.trials, written.pipeline_path, "wait=false")
    follow(job, written, settings)
    returns, summary, failures = trial_returns(context, written, settings.target, job)
    if settings.recovery.max_attempts > 1:
        returns, summary = recover(context, written, settings, to_round(written.batch, returns, summary, failures, job))
    completed = sum(r.status == JobStatus.COMPLETED for r in returns)
    # A resumed run's PipelineJob is a new one: the line names it, not just the run.
    where = f"Run {written.batch.sweep.run_id} (PipelineJob {job.resource_name.rsplit('/', 1)[-1]})"
    log.info(f"{where}: {completed} of {len(returns)} trials completed{summary_usage_text(summary)}")
    return returns


def _attempt(context: LaunchContext, settings: SubmitSettings, first: Written, attempt: int, sweep: SweepSpec) -> Round:
    """One recovery attempt: its batch written, submitted (and added to the sweep's manifest
    at once, so `status` and `cancel` find it if the launcher stops), followed and read."""
    written = write_batch(attempt_batch(first.batch, attempt, sweep))
    job = submit(written, settings)
    add_job(first.manifest_path, job.resource_name)
    follow(job, written, settings)
    returns, summary, failures = trial_returns(context, written, settings.target, job)
    return to_round(written.batch, returns, summary, failures, job)


def recover(
    context: LaunchContext, written: Written, settings: SubmitSettings, first: Round
) -> Tuple[List[JobReturn], Optional[Dict[str, Any]]]:
    """Runs again the trials that failed for a recoverable kind (README, "Recovery"); every
    trial's JobReturn, and the summary over every attempt, written in the sweep dir and the bucket."""
    recovery: Recovery[JobReturn] = Recovery(written.batch.sweep, settings.recovery, first)
    recovery.run(functools.partial(_attempt, context, settings, written))
    if len(recovery.jobs) == 1:
        return recovery.ordered(), first.summary
    summary = recovery.final_summary()
    if summary is not None:
        target = settings.target
        storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
        path = publish(summary, written.batch.sweep, written.batch.sweep_dir, storage)
        log.info(f"Summary over {len(recovery.jobs)} PipelineJobs: {path}")
    return recovery.ordered(), summary
