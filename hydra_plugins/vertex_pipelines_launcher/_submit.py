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

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.failures import Failure
from hydra_vertex_pipelines.components.sweep_files import SweepFiles, TrialFiles
from hydra_vertex_pipelines.components.trial_result import ENDINGS, parse_record, record_problem
from hydra_vertex_pipelines.pipeline_builder.cloud import TaskDetailState, gcs, vertex
from hydra_vertex_pipelines.pipeline_builder.cloud.failures import CustomJobErrors, task_failure
from hydra_vertex_pipelines.pipeline_builder.spec.manifest import write_manifest
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._compose import compose_job
from ._context import LaunchContext
from ._errors import FollowingLost, LauncherConfigError
from ._failures import failure_counts, rewrite_with_failures
from ._planning import Batch
from ._recovery import Recovery, Round
from ._resume import RERUN_LABEL, rerun_lost_results
from ._returns import Evidence, job_return, needs_job_error, returns_without_values, trial_failure
from ._settings import SubmitSettings
from ._usage import job_usages, rewrite, summary_usage_text, with_job_usage
from ._writing import Written, announce, write_batch

log = logging.getLogger(__name__)

# How the progress line counts a trial task's state: a cache hit is a success, a task that
# was cancelled or never triggered a failure.
FAILED_LIKE = {
    TaskDetailState.CANCELLED: TaskDetailState.FAILED,
    TaskDetailState.NOT_TRIGGERED: TaskDetailState.FAILED,
    TaskDetailState.SKIPPED: TaskDetailState.SUCCEEDED,
}


def upload_files(batch: Batch, target: vertex.VertexTarget, storage: Any) -> None:
    """Puts what the run reads from its bucket there before it starts."""
    files = batch.uploads()
    if files or batch.packages:
        gcs.ensure_bucket(storage, batch.sweep.pipeline_root, target.location)
    for uri, data in files.items():
        gcs.write_bytes(storage, uri, data)
    if files:
        log.info(f"Uploaded {len(files)} files under {batch.sweep.run_root}")
    from hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel import upload_if_absent

    for package in batch.packages:
        if upload_if_absent(storage, package):
            log.info(f"Uploaded {package.uri} (the trials install it)")
        else:
            log.info(f"Already in the bucket, not uploaded again: {package.uri}")


def submit(written: Written, settings: SubmitSettings) -> Any:
    """Creates the PipelineJob (exactly once) from this launch's own pipeline file and
    records it in the manifest."""
    batch = written.batch
    target = settings.target
    creds = vertex.credentials(target)
    storage = gcs.client(target.project, None if target.emulated else creds)
    upload_files(batch, target, storage)
    vertex.init(target, creds)
    job = vertex.submit(
        target,
        template_path=str(written.pipeline_path),
        job_id=batch.job_id or batch.sweep.run_id,
        display_name=settings.display_name,
        pipeline_root=batch.sweep.pipeline_root,
        labels=batch.pipeline_labels,
        enable_caching=settings.enable_caching,
        failure_policy=settings.failure_policy.value,
        service_account=settings.service_account,
        network=settings.network,
        reserved_ip_ranges=list(settings.reserved_ip_ranges),
        experiment=settings.experiment,
        encryption_spec_key_name=settings.encryption_spec_key_name,
        on_retry=lambda e: log.warning(f"Creating the PipelineJob failed ({type(e).__name__}: {e}); retrying"),
    )
    url = vertex.console_url(job.resource_name)
    where = {
        "resource_name": job.resource_name,
        "console_url": url,
        "project": target.project,
        "location": target.location,
        "api_endpoint": target.api_endpoint,
        "jobs": [job.resource_name],  # every PipelineJob of the sweep: recovery adds its attempts'
    }
    write_manifest(written.manifest_path, {**written.manifest, "vertex": where})
    log.info(f"Submitted {job.resource_name}")
    log.info(f"View it in the Vertex AI console: {url}")
    return job


class Progress:
    """Trials succeeded, failed and running: a bar on a terminal, log lines otherwise."""

    def __init__(self, trial_tasks: Dict[str, int], total: int) -> None:
        self.trial_tasks = trial_tasks
        self.total = total
        self.last = ""
        self.tty = sys.stderr.isatty()

    def __call__(self, state: str, tasks: Dict[str, Dict[str, Any]]) -> None:
        counts = {TaskDetailState.SUCCEEDED: 0, TaskDetailState.FAILED: 0, TaskDetailState.RUNNING: 0}
        # Trials looped over by one task have no task names of their own: count the iterations.
        names = self.trial_tasks or [n for n in tasks if "collect" not in n and "for-loop" not in n]
        for name in names:
            s = tasks.get(name, {}).get("state", TaskDetailState.PENDING)
            # SKIPPED is Vertex's word for a cache hit: a trial that succeeded in a resumed run.
            key = FAILED_LIKE.get(s, s)
            if key in counts:
                counts[key] += 1
        total = self.total
        succeeded, failed = counts[TaskDetailState.SUCCEEDED], counts[TaskDetailState.FAILED]
        done = succeeded + failed
        line = (
            f"{state.replace('PIPELINE_STATE_', '').lower()}: {succeeded} succeeded, "
            f"{failed} failed, {counts[TaskDetailState.RUNNING]} running of {total} trials"
        )
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


def reattach_hint(job: Any, sweep_dir: Path) -> str:
    return (
        f"The run goes on in Vertex AI: {vertex.console_url(job.resource_name)}\n"
        f"  follow it again:  hydra-vertex-pipelines status {sweep_dir} --wait\n"
        f"  its results:      hydra-vertex-pipelines results {sweep_dir}\n"
        f"  cancel it:        hydra-vertex-pipelines cancel {sweep_dir}"
    )


def follow(job: Any, written: Written, settings: SubmitSettings) -> str:
    """Follows the run. Ctrl-C, or Vertex out of reach for `reconnect_timeout`, leaves it
    going and says how to re-attach or cancel, without a traceback."""
    batch = written.batch
    progress = Progress({name: number for number, name in written.task_names.items()}, len(batch.sweep.trials))

    def outage(e: Exception) -> None:
        log.warning(
            f"Vertex AI cannot be reached ({type(e).__name__}); trying again for up to {settings.reconnect_timeout:.0f} s"
        )

    try:
        state = vertex.follow(job, settings.poll_interval, progress, settings.reconnect_timeout, outage)
    except KeyboardInterrupt:
        progress.close()
        log.warning(f"Stopped following. {reattach_hint(job, batch.sweep_dir)}")
        sys.exit(130)
    except vertex.ConnectionLost as e:
        progress.close()
        raise FollowingLost(f"Stopped following: {e}\n{reattach_hint(job, batch.sweep_dir)}") from None
    progress.close()
    log.info(f"Run {batch.sweep.run_id} ended: {state}")
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
    if summary is not None:
        try:  # every PipelineJob of this run, a resumed one's earlier ones included
            jobs = vertex.run_custom_jobs("hydra-run", batch.sweep.run_id)
        except Exception as e:  # noqa: BLE001 - the results matter more than the hours
            log.warning(f"Listing the run's CustomJobs failed ({type(e).__name__}: {e}): machine-hours from the trial records")
        else:
            summary = with_job_usage(summary, job_usages(jobs, batch.sweep.trials), batch.sweep.cost_rates)
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
    created = job.gca_resource.create_time.timestamp() if resumed(batch) else None
    job_errors = CustomJobErrors(tasks)
    returns, failures = [], {}
    for trial in batch.sweep.trials:
        record = _record(rows.get(trial.number))
        if record is None:  # no summary row: the collector did not run or failed
            record = parse_record(gcs.read_bytes(storage, TrialFiles(trial.output_uri).result))
        task_name = written.task_names.get(trial.number, "")
        task = tasks.get(task_name, {})
        # In a resumed run, a trial that ran again (not a cache hit) must have a new record.
        not_before = created if created is not None and task_name and task.get("state") != TaskDetailState.SKIPPED else None
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
        log_path = row.get("log_url") or row.get("console_url")
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
        return returns_without_values(context, written.batch.sweep.trials, written.pipeline_path, "wait=false")
    follow(job, written, settings)
    returns, summary, failures = trial_returns(context, written, settings.target, job)
    if settings.recovery.max_attempts > 1:
        first = Round([t.number for t in written.batch.sweep.trials], returns, summary, failures, job.resource_name)
        returns, summary = recover(context, written, settings, first)
    completed = sum(r.status == JobStatus.COMPLETED for r in returns)
    log.info(f"Run {written.batch.sweep.run_id}: {completed} of {len(returns)} trials completed{summary_usage_text(summary)}")
    return returns


def _attempt(context: LaunchContext, settings: SubmitSettings, sweep_manifest: Path, batch: Batch) -> Round:
    """One recovery attempt: its batch written, submitted (and added to the sweep's manifest
    at once, so `status` and `cancel` find it if the launcher stops), followed and read."""
    written = write_batch(batch)
    job = submit(written, settings)
    data = strict_json.loads(sweep_manifest.read_text(encoding="utf-8"))
    vertex_data = data.get("vertex") or {}
    vertex_data["jobs"] = [*vertex_data.get("jobs", [vertex_data.get("resource_name")]), job.resource_name]
    write_manifest(sweep_manifest, {**data, "vertex": vertex_data})
    follow(job, written, settings)
    returns, summary, failures = trial_returns(context, written, settings.target, job)
    return Round([t.number for t in written.batch.sweep.trials], returns, summary, failures, job.resource_name)


def recover(
    context: LaunchContext, written: Written, settings: SubmitSettings, first: Round
) -> Tuple[List[JobReturn], Optional[Dict[str, Any]]]:
    """Runs again the trials that failed for a recoverable kind (README, "Recovery"); every
    trial's JobReturn, and the summary over every attempt, written in the sweep dir and the bucket."""
    recovery = Recovery(written.batch, settings.recovery, first)
    returns = recovery.run(functools.partial(_attempt, context, settings, written.manifest_path))
    summary = recovery.final_summary() if len(recovery.jobs) > 1 else first.summary
    if len(recovery.jobs) > 1 and summary is not None:
        batch = written.batch
        files = SweepFiles(batch.sweep_dir, batch.sweep.tag)
        rewrite(summary, files.summary, files.report, os.path.dirname(batch.sweep.report_path))
        target = settings.target
        storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
        gcs.write_bytes(storage, batch.sweep.files.summary, files.summary.read_bytes())
        gcs.write_bytes(storage, batch.sweep.files.report, files.report.read_bytes())
        log.info(f"Summary over {len(recovery.jobs)} PipelineJobs: {files.summary}")
    return returns, summary
