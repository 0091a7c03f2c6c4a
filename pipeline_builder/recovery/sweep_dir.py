"""`hydra-vertex-pipelines recover`: the launcher's recovery for a sweep it no longer
follows (submitted with wait=false, or its launcher stopped), from the sweep dir alone.

The sweep's PipelineJobs so far are read back (the latest followed to its end, its summary
read from the bucket; earlier ones from the sweep dir, where whoever followed them copied
their summaries), then the attempts run as the launcher runs them (`attempts.Recovery`):
each a new PipelineJob compiled from the manifest's sweep into recovery/attempt-N/. A
trial's result here is its summary row.
"""

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source
from hydra_vertex_pipelines.components.sweep_files import SweepFiles, fuse_to_gcs

from ..cloud import gcs, vertex
from ..spec.manifest import add_job, claim_files, manifest_data, write_manifest
from ..spec.sweep import SweepSpec
from ..spec.trials import trial_rows
from .attempts import Recovery, Round, attempt_job_id, attempts_made
from .record import RecoverError, SweepRecord, attempt_of, job_manifest, with_max_attempts
from .submission import submit_job
from .summary import publish, read_summary, rewrite, unexplained, vertex_failures, with_run_usage

log = logging.getLogger(__name__)

Row = Dict[str, Any]
OnPoll = Callable[[str, str, Dict[str, Dict[str, Any]]], None]  # job, its state, its tasks


class Recovered(NamedTuple):
    """What `recover_sweep` ended with: the sweep's summary over every PipelineJob (None
    if no collector wrote one) and the PipelineJobs it submitted."""

    summary: Optional[Dict[str, Any]]
    submitted: List[str]


def _round(summary: Dict[str, Any], failures: Dict[int, Failure], resource_name: str) -> Round[Row]:
    rows = {int(r["number"]): r for r in summary.get("trials", [])}
    completed = frozenset(n for n, r in rows.items() if r.get("status") == "COMPLETED")
    return Round(rows, completed, summary, failures, resource_name)


def _recorded_failures(summary: Dict[str, Any]) -> Dict[int, Failure]:
    """The failed rows' failures as the summary gives them (unknown where it says none)."""
    failures = {}
    for row in summary.get("trials", []):
        if row.get("status") != "COMPLETED":
            failures[int(row["number"])] = Failure.from_json(row.get("failure")) or Failure(FailureKind.UNKNOWN, Source.NONE)
    return failures


class Follower:
    """Follows a PipelineJob of the sweep to its end and reads what it ended with."""

    def __init__(self, record: SweepRecord, storage: Any, poll_interval: float, on_poll: OnPoll) -> None:
        self.record, self.storage, self.poll_interval, self.on_poll = record, storage, poll_interval, on_poll

    def read(self, resource_name: str, manifest_path: Path, manifest: Dict[str, Any]) -> Round[Row]:
        """The job's round: its collector's summary (machine-hours from the CustomJobs) and
        each failed trial's failure, Vertex's evidence where its row has none."""
        job = vertex.attach(resource_name)
        state = vertex.follow(job, self.poll_interval, lambda s, tasks: self.on_poll(resource_name, s, tasks))
        uri = fuse_to_gcs(manifest["summary_path"])
        summary = gcs.read_json(self.storage, uri)
        if summary is None:
            raise RecoverError(
                f"{resource_name} ended {state} without a summary at {uri} (its collector did not run): "
                "there is no record of which trials completed"
            )
        summary = with_run_usage(summary, self.record.sweep)
        failures = _recorded_failures(summary)
        rows = unexplained(summary)
        if rows:
            failures.update(vertex_failures(rows, vertex.task_details(job), manifest, self.record.rules))
        files = SweepFiles.of_pipeline(Path(manifest["pipeline_yaml"]))
        if files is not None and not files.summary.exists():  # the job's own copy, as the launcher keeps one
            rewrite(summary, files.summary, None, os.path.dirname(self.record.sweep.report_path))
        return _round(summary, failures, resource_name)


def history(record: SweepRecord, follower: Follower) -> List[Tuple[int, Round[Row]]]:
    """The sweep's PipelineJobs so far as (attempt, round), oldest first: the latest one
    followed to its end and read from the bucket, the earlier ones from their copies in the
    sweep dir (a copy that is missing is passed over)."""
    out = []
    for i, name in enumerate(record.jobs):
        found = job_manifest(record, name)
        if found is None:
            raise RecoverError(
                f"{name} is in {record.manifest_path}'s vertex.jobs, but no manifest in the sweep dir was written with it"
            )
        path, data = found
        if i == len(record.jobs) - 1:
            out.append((attempt_of(name), follower.read(name, path, data)))
            continue
        files = SweepFiles.of_pipeline(Path(data["pipeline_yaml"]))
        summary = read_summary(files.summary) if files is not None else None
        if summary is None and i == 0:
            raise RecoverError(f"{name}'s summary is not in {record.sweep_dir}: the first PipelineJob's results are unknown")
        if summary is not None:
            out.append((attempt_of(name), _round(summary, _recorded_failures(summary), name)))
    return out


def _write_attempt(record: SweepRecord, attempt: int, sweep: SweepSpec) -> Tuple[SweepSpec, SweepFiles[Path], Dict[str, Any]]:
    """The attempt's pipeline.yaml and manifest, in the sweep dir's recovery/attempt-N/."""
    from ..pipeline import compiled_pipeline, trial_task_names

    folder = record.sweep_dir / SweepFiles.RECOVERY / f"attempt-{attempt}"
    folder.mkdir(parents=True, exist_ok=True)
    files = claim_files(SweepFiles(folder))
    sweep = dataclasses.replace(sweep, tag=files.tag)
    spec, document = compiled_pipeline(sweep)
    write_atomic(files.pipeline, document)
    data = manifest_data(
        sweep,
        files.pipeline,
        mode=record.manifest.get("mode"),
        initial_job_idx=record.manifest.get("initial_job_idx"),
        files={},
        failure_rules=record.manifest.get("failure_rules") or [],
    )
    by_folder = trial_task_names(spec)
    for trial in data["trials"]:
        trial["task_name"] = by_folder.get(trial["output_uri"])
    write_manifest(files.manifest, data)
    return sweep, files, data


def run_attempt(record: SweepRecord, follower: Follower, attempt: int, sweep: SweepSpec) -> Round[Row]:
    """One attempt: written, its trial list uploaded if it needs one, submitted with the
    sweep's settings (added to the manifest's vertex.jobs at once), followed and read."""
    sweep, files, data = _write_attempt(record, attempt, sweep)
    if sweep.trials_file:
        gcs.write_bytes(follower.storage, sweep.trials_file, json.dumps(trial_rows(sweep.trials)).encode())
    job = submit_job(
        record.target,
        files.pipeline,
        attempt_job_id(record.job_id, attempt),
        sweep.pipeline_root,
        record.job,
        files.manifest,
        data,
    )
    add_job(record.manifest_path, job.resource_name)
    log.warning(f"Submitted {job.resource_name}")
    return follower.read(job.resource_name, files.manifest, data)


def recover_sweep(record: SweepRecord, max_attempts: Optional[int], poll_interval: float, on_poll: OnPoll) -> Recovered:
    """Follows the batch's latest PipelineJob to its end, then runs attempts until no failed
    trial is recoverable; the summary over every PipelineJob, in the sweep dir and the bucket."""
    settings = with_max_attempts(record.recovery, max_attempts)
    vertex.init(record.target)
    storage = gcs.client(record.target.project)
    follower = Follower(record, storage, poll_interval, on_poll)
    (_, first), *later = history(record, follower)
    attempts = {int(r["number"]): attempts_made(r) for r in (first.summary or {}).get("trials", [])}
    recovery: Recovery[Row] = Recovery(record.sweep, settings, first, attempts)
    for attempt, done in later:
        recovery.add(done, attempt)
    before = len(recovery.jobs)
    recovery.run(lambda attempt, sweep: run_attempt(record, follower, attempt, sweep))
    summary = recovery.final_summary()
    if summary is not None:
        publish(summary, record.sweep, record.sweep_dir, storage)
    return Recovered(summary, recovery.jobs[before:])
