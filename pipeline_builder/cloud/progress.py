"""How many trials of a run succeeded, failed or are running, from its tasks' states: one
count for the launcher's progress line and the `status` command."""

from typing import Any, Collection, Dict, Mapping

from .states import TaskDetailState

# How a trial task's state counts: a cache hit is a success (a trial that succeeded in an
# earlier PipelineJob of the run), a task that was cancelled or never triggered a failure.
COUNTED_AS = {
    TaskDetailState.CANCELLED: TaskDetailState.FAILED,
    TaskDetailState.NOT_TRIGGERED: TaskDetailState.FAILED,
    TaskDetailState.SKIPPED: TaskDetailState.SUCCEEDED,
}
SHOWN = (TaskDetailState.SUCCEEDED, TaskDetailState.FAILED, TaskDetailState.RUNNING, TaskDetailState.PENDING)


def trial_counts(tasks: Mapping[str, Mapping[str, Any]], trial_tasks: Collection[str] = ()) -> Dict[TaskDetailState, int]:
    """Trials by state (succeeded, failed, running, pending). `trial_tasks` names the trials'
    tasks; without names (trials looped over by one task, or a run named by its resource name),
    every task but the collector and the loop itself is a trial."""
    names = trial_tasks or [n for n in tasks if "collect" not in n and "for-loop" not in n]
    counts = {state: 0 for state in SHOWN}
    for name in names:
        state = tasks.get(name, {}).get("state", TaskDetailState.PENDING)
        state = COUNTED_AS.get(state, state)
        counts[state if state in counts else TaskDetailState.PENDING] += 1
    return counts


def counts_line(counts: Mapping[TaskDetailState, int], total: int) -> str:
    """`2 succeeded, 0 failed, 1 running of 3 trials`."""
    return (
        f"{counts[TaskDetailState.SUCCEEDED]} succeeded, {counts[TaskDetailState.FAILED]} failed, "
        f"{counts[TaskDetailState.RUNNING]} running of {total} trials"
    )
