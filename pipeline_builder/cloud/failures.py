"""Why trials of a Vertex run failed: the evidence Vertex holds, read with one request per
failed trial at most, and classified by components/failures.py's table.

A task's own error is gcpc's launcher's (it created the CustomJob, watched it, and raised
`ValueError` or `RuntimeError` when it failed); the CustomJob's `error` says why the job
failed. Reading the CustomJobs costs one GET each, so only trials that left no record of
their own ending are read, once for the whole run.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra_vertex_pipelines.components.failures import RULES, Failure, Rule, TrialEvidence, failure_of

from . import vertex
from .states import TaskDetailState

ENDED_BADLY = (TaskDetailState.FAILED, TaskDetailState.CANCELLED)


class CustomJobErrors:
    """The errors of a run's failed CustomJobs by display name, read when first asked for."""

    def __init__(self, tasks: Dict[str, Dict[str, Any]]) -> None:
        self.tasks = tasks  # what `vertex.task_details` gives
        self._errors: Optional[Dict[str, Tuple[int, str]]] = None

    def of(self, display_name: str) -> Optional[Tuple[int, str]]:
        if self._errors is None:
            failed = [t["custom_job"] for t in self.tasks.values() if t.get("custom_job") and t.get("state") in ENDED_BADLY]
            self._errors = vertex.custom_job_errors(failed)
        return self._errors.get(display_name)


def task_failure(task: Dict[str, Any]) -> Optional[Tuple[Optional[int], str]]:
    """A failed task's own error, gcpc's launcher's: (None, message), or None."""
    return (None, task["error"]) if task.get("error") else None


def trial_failures(
    rows: List[Dict[str, Any]],
    tasks: Dict[str, Dict[str, Any]],
    task_names: Dict[int, str],
    display_names: Dict[int, str],
    rules: Sequence[Rule] = RULES,
) -> Dict[int, Failure]:
    """Trial number -> failure of the summary rows that left no record (the collector could
    not say why): from their CustomJob's error, else their task's. `task_names` maps
    trial numbers to their pipeline tasks (looped trials have none); `rules` classify."""
    errors = CustomJobErrors(tasks)
    failures = {}
    for row in rows:
        failure = row.get("failure") or {}
        if row.get("status") == "COMPLETED" or failure.get("source") not in (None, "none"):
            continue
        number = int(row["number"])
        task = tasks.get(task_names.get(number, ""), {})
        evidence = TrialEvidence(None, None, errors.of(display_names.get(number, "")), task_failure(task), task.get("state"))
        failures[number] = failure_of(evidence, rules)
    return failures
