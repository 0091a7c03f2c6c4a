"""The states of Vertex AI's resources, as its API spells them: what the launcher reads
when it follows a run, and what the emulator serves.

Each is a `str` enum: it compares equal to, and serialises as, the name in the API (JSON
read back holds the plain names).
"""

from enum import Enum


class _Named(str, Enum):
    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # as the name's: equal to it, so one key in a dict or set
        return hash(self.value)


class PipelineState(_Named):
    """PipelineJob.state"""

    PENDING = "PIPELINE_STATE_PENDING"
    RUNNING = "PIPELINE_STATE_RUNNING"
    SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
    FAILED = "PIPELINE_STATE_FAILED"
    CANCELLING = "PIPELINE_STATE_CANCELLING"
    CANCELLED = "PIPELINE_STATE_CANCELLED"
    PAUSED = "PIPELINE_STATE_PAUSED"


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
# What a follower stops at: an end, or a pause that only a person can lift.
PIPELINE_STOPPED = (*PIPELINE_ENDED, PipelineState.PAUSED)
TASK_ENDED = (
    TaskDetailState.SUCCEEDED,
    TaskDetailState.SKIPPED,
    TaskDetailState.FAILED,
    TaskDetailState.CANCELLED,
    TaskDetailState.NOT_TRIGGERED,
)
JOB_ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
