"""The summary and report of a run, with each failed trial's kind from all the evidence.

The collector classifies what it can read, the trials' records; the launcher also knows
how each trial's task and CustomJob ended, and rewrites the summary and report with it.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.failures import Failure, with_failures
from hydra_vertex_pipelines.components.report import render_html

log = logging.getLogger(__name__)


def rewrite_with_failures(
    summary_path: Path, report_path: Path, report_dir: str, failures: Dict[int, Failure]
) -> Optional[Dict[str, Any]]:
    """Sets the failures in the summary at `summary_path` and renders the report at
    `report_path` again (its links relative to `report_dir`, as the collector made them);
    the new summary, or None when there is none or nothing changed."""
    try:
        summary = strict_json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or not with_failures(summary, failures):
        return None
    write_atomic(str(summary_path), strict_json.dumps(summary, indent=2))
    if report_path.exists():
        write_atomic(str(report_path), render_html(summary, report_dir))
    return summary


def failure_counts(failures: Dict[int, Failure]) -> str:
    """`2 app, 1 timeout`: the failed trials by kind."""
    counts: Dict[str, int] = {}
    for failure in failures.values():
        counts[failure.kind.value] = counts.get(failure.kind.value, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
