"""The states of the resources the emulator serves, as Vertex's API spells them.

Each is a `str` enum: it compares equal to, and serialises as, the name in the API (saved
resources read back hold the plain names).
"""

from enum import Enum
from typing import Dict

from ..local.plan import TaskState


class _Named(str, Enum):
    def __str__(self) -> str:
        return self.value


class PipelineState(_Named):
    """PipelineJob.state"""

    PENDING = "PIPELINE_STATE_PENDING"
    RUNNING = "PIPELINE_STATE_RUNNING"
    SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
    FAILED = "PIPELINE_STATE_FAILED"
    CANCELLING = "PIPELINE_STATE_CANCELLING"
    CANCELLED = "PIPELINE_STATE_CANCELLED"


class TaskDetailState(_Named):
    """PipelineTaskDetail.state"""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # a cache hit
    NOT_TRIGGERED = "NOT_TRIGGERED"  # an upstream task failed
    CANCELLED = "CANCELLED"


class JobState(_Named):
    """CustomJob.state"""

    PENDING = "JOB_STATE_PENDING"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"


PIPELINE_ENDED = (PipelineState.SUCCEEDED, PipelineState.FAILED, PipelineState.CANCELLED)
TASK_ENDED = (
    TaskDetailState.SUCCEEDED,
    TaskDetailState.SKIPPED,
    TaskDetailState.FAILED,
    TaskDetailState.CANCELLED,
    TaskDetailState.NOT_TRIGGERED,
)
JOB_ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

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
