"""A submitted sweep's summary as the launcher and `recover` finish it: each failed trial's
kind from all the evidence, machine-hours from the CustomJobs, every attempt merged.

The collector counts each trial's machines for the run time its record gives (the trial
process's start to end). A followed submitted run counts what Vertex recorded instead:
every CustomJob of the run, failed attempts included, from its startTime to its endTime,
read with one list of CustomJobs. The sweep dir's summary.json and report then show those.
The collector classifies what it can read, the trials' records; whoever followed the run
also knows how each trial's task and CustomJob ended, and rewrites the summary with it.
"""

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.collector import sweep_usage
from hydra_vertex_pipelines.components.failures import Failure, Rule, with_failures
from hydra_vertex_pipelines.components.machine_hours import hours_between, pool_machines, total, usage, usage_text
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..spec.sweep import SweepSpec
from ..spec.trials import TrialSpec

log = logging.getLogger(__name__)

JOBS_SOURCE = "CustomJobs' startTime and endTime"


def summary_usage_text(summary: Optional[Mapping[str, Any]]) -> str:
    """`; 0.021 machine-hours (Spot 0, standard 0.021), ...` from a summary, or "" without one."""
    if not summary or not summary.get("usage"):
        return ""
    return "; " + usage_text(summary["usage"]["totals"], summary["usage"].get("estimated_cost"))


def read_summary(path: Path) -> Optional[Dict[str, Any]]:
    """The summary at `path`, or None if there is none or it cannot be read."""
    try:
        return strict_json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def job_usages(jobs: Sequence[Mapping[str, Any]], trials: Sequence[TrialSpec]) -> Dict[int, Dict[str, Any]]:
    """Trial number -> machine-hours of all its CustomJobs (`vertex.run_custom_jobs`), each
    job's machines for its recorded start to end; a job that never started counts nothing."""
    numbers = {t.display_name: t.number for t in trials}
    per_trial: Dict[int, List[Dict[str, Any]]] = {}
    for job in jobs:
        number = numbers.get(job["display_name"])
        hours = hours_between(job["start_time"], job["end_time"])
        if number is None or hours is None:
            continue
        per_trial.setdefault(number, []).append(usage(pool_machines(job["worker_pool_specs"]), job["strategy"], hours))
    return {number: {**total(usages), "custom_jobs": len(usages)} for number, usages in per_trial.items()}


def with_job_usage(summary: Dict[str, Any], per_trial: Mapping[int, Dict[str, Any]], cost_rates: str) -> Dict[str, Any]:
    """The summary with each trial's and the sweep's machine-hours from its CustomJobs; the
    collector's (from the trial records) are kept as `usage_from_record` and `from_trial_records`."""
    rows = summary["trials"]
    for row in rows:
        row["usage_from_record"] = row.get("usage")
        row["usage"] = per_trial.get(int(row["number"]))
    before = summary.get("usage", {}).get("totals")
    summary["usage"] = {**sweep_usage(rows, cost_rates), "source": JOBS_SOURCE, "from_trial_records": before}
    return summary


def with_run_usage(summary: Dict[str, Any], sweep: SweepSpec) -> Dict[str, Any]:
    """The summary with the machine-hours of every CustomJob of the sweep's run (one list,
    every PipelineJob of the run included); as it was if they cannot be listed."""
    from ..cloud import vertex

    try:
        jobs = vertex.run_custom_jobs("hydra-run", sweep.run_id)
    except Exception as e:  # noqa: BLE001 - the results matter more than the hours
        log.warning(f"Listing the run's CustomJobs failed ({type(e).__name__}: {e}): machine-hours from the trial records")
        return summary
    return with_job_usage(summary, job_usages(jobs, sweep.trials), sweep.cost_rates)


def rewrite(summary: Mapping[str, Any], summary_path: Path, report_path: Optional[Path], report_dir: str) -> None:
    """The sweep dir's summary.json, and its report rendered again from it (None: no report),
    after the launcher added what the collector could not know."""
    from hydra_vertex_pipelines.components.report import render_html

    write_atomic(str(summary_path), strict_json.dumps(summary, indent=2))
    if report_path is not None:
        write_atomic(str(report_path), render_html(summary, report_dir))


def rewrite_with_failures(
    summary_path: Path, report_path: Path, report_dir: str, failures: Dict[int, Failure]
) -> Optional[Dict[str, Any]]:
    """Sets the failures in the summary at `summary_path` and renders the report at
    `report_path` again (its links relative to `report_dir`, as the collector made them);
    the new summary, or None when there is none or nothing changed."""
    summary = read_summary(summary_path)
    if not isinstance(summary, dict) or not with_failures(summary, failures):
        return None
    rewrite(summary, summary_path, report_path if report_path.exists() else None, report_dir)
    return summary


def unexplained(summary: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The failed rows whose failure Vertex's evidence may say better than the collector
    could: those with no record of their own, and those whose record says FAILED (a
    preemption the trainer turned into an exception outranks it: components/failures.py)."""
    return [
        r
        for r in summary.get("trials", [])
        if r.get("status") != "COMPLETED" and (r.get("failure") or {}).get("source") in (None, "none", "record")
    ]


def vertex_failures(
    rows: List[Dict[str, Any]], tasks: Dict[str, Dict[str, Any]], manifest: Mapping[str, Any], rules: Sequence[Rule]
) -> Dict[int, Failure]:
    """Why the failed `rows` of the run a manifest was written with failed, from its tasks
    (`vertex.task_details`) and their CustomJobs (one GET per failed CustomJob)."""
    from ..cloud.failures import trial_failures

    trials = manifest.get("trials", [])
    task_names = {int(t["number"]): t.get("task_name") or "" for t in trials}
    display_names = {int(t["number"]): t["display_name"] for t in trials}
    return trial_failures(rows, tasks, task_names, display_names, rules)


def failure_counts(failures: Dict[int, Failure]) -> str:
    """`2 app, 1 timeout`: the failed trials by kind."""
    counts: Dict[str, int] = {}
    for failure in failures.values():
        counts[failure.kind.value] = counts.get(failure.kind.value, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def merged_summary(base: Dict[str, Any], rows: Dict[int, Dict[str, Any]], cost_rates: str) -> Dict[str, Any]:
    """The last attempt's summary (its objective, best trial and metrics cover every
    completed trial) with every trial's row, counts and machine-hours."""
    trials = [rows[n] for n in sorted(rows)]
    counts: Dict[str, int] = {}
    for row in trials:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    usage_ = {**base.get("usage", {}), **{k: v for k, v in sweep_usage(trials, cost_rates).items() if k != "source"}}
    return {**base, "trials": trials, "counts": counts, "usage": usage_}


def publish(summary: Mapping[str, Any], sweep: SweepSpec, sweep_dir: Path, storage: Any) -> Path:
    """The sweep's summary and report, in the sweep dir and the bucket (where the collector
    wrote them); the local summary's path."""
    from ..cloud import gcs

    files = SweepFiles(Path(sweep_dir), sweep.tag)
    rewrite(summary, files.summary, files.report, os.path.dirname(sweep.report_path))
    gcs.write_bytes(storage, sweep.files.summary, files.summary.read_bytes())
    gcs.write_bytes(storage, sweep.files.report, files.report.read_bytes())
    return files.summary
