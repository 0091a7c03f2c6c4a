"""The summary and report of a run, with each failed trial's kind from all the evidence.

The collector classifies what it can read, the trials' records; the launcher also knows
how each trial's task and CustomJob ended, and rewrites the summary and report with it.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Optional

from hydra_vertex_pipelines.components.failures import Failure, with_failures

from ._usage import read_summary, rewrite

log = logging.getLogger(__name__)


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


def failure_counts(failures: Dict[int, Failure]) -> str:
    """`2 app, 1 timeout`: the failed trials by kind."""
    counts: Dict[str, int] = {}
    for failure in failures.values():
        counts[failure.kind.value] = counts.get(failure.kind.value, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
