"""Why trials of a Vertex run failed: the evidence Vertex holds, read with one request per
failed trial at most, and classified by components/failures.py's table.

A task's own error is gcpc's launcher's (it created the CustomJob, watched it, and raised
`ValueError` or `RuntimeError` when it failed); the CustomJob's `error` says why the job
failed. Reading a CustomJob costs one GET, so only the CustomJobs of trials that left no
record of their own ending are read, each at most once (a loop's failed ones together).
"""

from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from hydra_vertex_pipelines.components.failures import RULES, Failure, Rule, TrialEvidence, failure_of

from . import vertex
from .states import TaskDetailState

ENDED_BADLY = (TaskDetailState.FAILED, TaskDetailState.CANCELLED)


class CustomJobErrors:
    """The errors of a run's failed CustomJobs by display name, each read once, when first
    asked for: a trial's own task names its CustomJob; loop iterations share a task name,
    so a looped trial's is found among all the run's failed CustomJobs, read together."""

    def __init__(self, tasks: Dict[str, Dict[str, Any]]) -> None:
        self.tasks = tasks  # what `vertex.task_details` gives
        self._errors: Dict[str, Tuple[int, str]] = {}
        self._read: Set[str] = set()  # resource names already read

    def of(self, display_name: str, task: Optional[Dict[str, Any]] = None) -> Optional[Tuple[int, str]]:
        """The error of the CustomJob `display_name`, whose task is `task` (None in a loop)."""
        if task is not None:
            names = [task["custom_job"]] if task.get("custom_job") else []
        else:
            names = [t["custom_job"] for t in self.tasks.values() if t.get("custom_job") and t.get("state") in ENDED_BADLY]
        unread = [n for n in names if n not in self._read]
        self._read.update(unread)
        if unread:
            self._errors.update(vertex.custom_job_errors(unread))
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
    """Trial number -> failure of failed summary rows that left no record (the collector
    could not say why) or a record saying FAILED (a preemption outranks it), as
    `recovery.summary.unexplained` picks them: from their CustomJob's error, else their
    task's. `task_names` maps trial numbers to their pipeline tasks (looped trials have
    none); `rules` classify."""
    errors = CustomJobErrors(tasks)
    failures = {}
    for row in rows:
        failure = row.get("failure") or {}
        number = int(row["number"])
        task_name = task_names.get(number, "")
        task = tasks.get(task_name, {})
        job_error = errors.of(display_names.get(number, ""), task if task_name else None)
        recorded = failure.get("source") == "record"  # the record's error, as the collector read it
        status, error = ("FAILED", failure.get("message")) if recorded else (None, None)
        evidence = TrialEvidence(status, error, job_error, task_failure(task), task.get("state"))
        failures[number] = failure_of(evidence, rules)
    return failures
