"""Submit mode: send the compiled pipeline to Vertex AI, follow it, bring the results back."""

import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.utils import JobReturn

from pipeline_builder import gcs, vertex
from pipeline_builder.manifest import read_manifest, write_manifest

from ._core import RESULT_FILE, settle
from ._planning import Batch

log = logging.getLogger(__name__)


def upload_files(batch: Batch, storage: Any) -> None:
    """Puts what the run reads from its bucket there before it starts."""
    files = batch.uploads()
    if files or batch.package is not None:
        assert batch.target is not None
        gcs.ensure_bucket(storage, batch.sweep.pipeline_root, batch.target.location)
    for uri, data in files.items():
        gcs.write_bytes(storage, uri, data)
    if files:
        log.info(f"Uploaded {len(files)} files under {batch.sweep.run_root}")
    if batch.package is not None:
        from pipeline_builder.packaging import upload_if_absent

        if upload_if_absent(storage, batch.package):
            log.info(f"Uploaded the trials' package to {batch.package.uri}")
        else:
            log.info(f"The trials' package is in the bucket already: {batch.package.uri}")


def submit(batch: Batch, lconf: Any, pipeline_path: Path, manifest_path: Path) -> Any:
    """Creates the PipelineJob (exactly once) and records it in the manifest."""
    target = batch.target
    assert target is not None
    creds = vertex.credentials(target)
    storage = gcs.client(target.project, None if target.emulated else creds)
    upload_files(batch, storage)
    vertex.init(target, creds)
    job = vertex.submit(
        target,
        template_path=str(pipeline_path),
        job_id=batch.job_id or batch.sweep.run_id,
        display_name=str(lconf.display_name or batch.sweep.run_id),
        pipeline_root=batch.sweep.pipeline_root,
        labels=batch.pipeline_labels,
        enable_caching=lconf.enable_caching,
        failure_policy=str(lconf.failure_policy),
        service_account=lconf.service_account,
        network=lconf.network,
        reserved_ip_ranges=list(lconf.reserved_ip_ranges or []),
        experiment=lconf.experiment,
        encryption_spec_key_name=lconf.encryption_spec_key_name,
        on_retry=lambda e: log.warning(f"Creating the PipelineJob failed ({type(e).__name__}: {e}); retrying"),
    )
    url = vertex.console_url(job.resource_name)
    manifest = read_manifest(manifest_path)
    manifest["vertex"] = {
        "resource_name": job.resource_name,
        "console_url": url,
        "project": target.project,
        "location": target.location,
        "api_endpoint": target.api_endpoint,
    }
    write_manifest(manifest_path, manifest)
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
        counts = {"SUCCEEDED": 0, "FAILED": 0, "RUNNING": 0}
        # Trials looped over by one task have no task names of their own: count the iterations.
        names = self.trial_tasks or [n for n in tasks if "collect" not in n and "for-loop" not in n]
        for name in names:
            s = tasks.get(name, {}).get("state", "PENDING")
            # SKIPPED is Vertex's word for a cache hit: a trial that succeeded in a resumed run.
            key = "FAILED" if s in ("FAILED", "CANCELLED", "NOT_TRIGGERED") else "SUCCEEDED" if s == "SKIPPED" else s
            if key in counts:
                counts[key] += 1
        total = self.total
        done = counts["SUCCEEDED"] + counts["FAILED"]
        line = (
            f"{state.replace('PIPELINE_STATE_', '').lower()}: {counts['SUCCEEDED']} succeeded, "
            f"{counts['FAILED']} failed, {counts['RUNNING']} running of {total} trials"
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


def follow(job: Any, batch: Batch, lconf: Any, manifest_path: Path) -> str:
    """Follows the run; Ctrl-C leaves it going and says how to re-attach or cancel."""
    manifest = read_manifest(manifest_path)
    trial_tasks = {t["task_name"]: t["number"] for t in manifest["trials"] if t.get("task_name")}
    progress = Progress(trial_tasks, len(manifest["trials"]))
    try:
        state = vertex.follow(job, float(lconf.poll_interval), progress)
    except KeyboardInterrupt:
        progress.close()
        log.warning(
            f"Stopped following; the run goes on in Vertex AI: {vertex.console_url(job.resource_name)}\n"
            f"  follow it again:  python -m pipeline_builder status {batch.sweep_dir} --wait\n"
            f"  its results:      python -m pipeline_builder results {batch.sweep_dir}\n"
            f"  cancel it:        python -m pipeline_builder cancel {batch.sweep_dir}"
        )
        raise
    progress.close()
    log.info(f"Run {batch.sweep.run_id} ended: {state}")
    return state


def trial_returns(batch: Batch, job: Any, app_name: str, manifest_path: Path) -> List[JobReturn]:
    """Each trial's JobReturn: one read of the collector's summary, else each result.json;
    a trial that ended without a result carries Vertex's error for its task."""
    target = batch.target
    assert target is not None
    storage = gcs.client(target.project, None if target.emulated else vertex.credentials(target))
    summary = gcs.read_json(storage, f"{batch.sweep.run_root}/{batch.sweep.summary_name}")
    if summary is not None:
        local = batch.sweep_dir / batch.sweep.summary_name
        local.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        log.info(f"Summary: {local}")
        report_name = Path(batch.sweep.report_path).name
        report = gcs.read_bytes(storage, f"{batch.sweep.run_root}/{report_name}")
        if report is not None:
            (batch.sweep_dir / report_name).write_bytes(report)
            log.info(f"Report: {batch.sweep_dir / report_name}")
    rows = {int(r["number"]): r for r in summary["trials"]} if summary else {}
    tasks = vertex.task_details(job)
    manifest_tasks = {t["number"]: t.get("task_name", "") for t in read_manifest(manifest_path)["trials"]}
    returns = []
    for trial in batch.sweep.trials:
        row: Optional[Dict[str, Any]] = rows.get(trial.number)
        if row is None:  # no summary: the collector did not run or failed
            row = gcs.read_json(storage, f"{trial.output_uri}/{RESULT_FILE}")
        task = tasks.get(manifest_tasks.get(trial.number, ""), {})
        reason = f"its task ended {task['state']}" if task.get("state") else "its task never ran"
        if task.get("error"):
            reason += f": {task['error']}"
        ret = JobReturn(overrides=list(trial.overrides), working_dir=trial.output_uri, task_name=app_name)
        returns.append(settle(ret, trial, row, reason))
    return returns
