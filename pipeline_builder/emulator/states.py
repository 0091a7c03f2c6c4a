"""How the emulator shows a local run in Vertex's states (cloud.states)."""

from typing import Dict

from ..cloud.states import PipelineState, TaskDetailState
from ..local.plan import TaskState

# A local task run's state as Vertex shows its task.
TASK_DETAIL_STATES: Dict[TaskState, TaskDetailState] = {
    TaskState.PENDING: TaskDetailState.PENDING,
    TaskState.RUNNING: TaskDetailState.RUNNING,
    TaskState.SUCCEEDED: TaskDetailState.SUCCEEDED,
    TaskState.FAILED: TaskDetailState.FAILED,
    TaskState.CACHED: TaskDetailState.SKIPPED,
    TaskState.SKIPPED: TaskDetailState.NOT_TRIGGERED,
    TaskState.CANCELLED: TaskDetailState.CANCELLED,
}
# How a local run's result ends its PipelineJob.
PIPELINE_END_STATES: Dict[TaskState, PipelineState] = {
    TaskState.SUCCEEDED: PipelineState.SUCCEEDED,
    TaskState.FAILED: PipelineState.FAILED,
    TaskState.CANCELLED: PipelineState.CANCELLED,
}
