"""Machine-hours for the launcher's final log line, and in submit mode from the CustomJobs.

The collector counts each trial's machines for the run time its record gives (the trial
process's start to end). A followed submitted run counts what Vertex recorded instead:
every CustomJob of the run, failed attempts included, from its startTime to its endTime,
read with one list of CustomJobs. The sweep dir's summary.json and report then show those.
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.collector import sweep_usage
from hydra_vertex_pipelines.components.machine_hours import hours_between, pool_machines, total, usage, usage_text
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

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
        return strict_json.loads(path.read_text(encoding="utf-8"))
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


def rewrite(summary: Mapping[str, Any], summary_path: Path, report_path: Optional[Path], report_dir: str) -> None:
    """The sweep dir's summary.json, and its report rendered again from it (None: no report),
    after the launcher added what the collector could not know."""
    from hydra_vertex_pipelines.components.report import render_html

    write_atomic(str(summary_path), strict_json.dumps(summary, indent=2))
    if report_path is not None:
        write_atomic(str(report_path), render_html(summary, report_dir))
