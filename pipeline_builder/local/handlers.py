"""How the runner hands a task to the code that runs it, as kfp.local's task handlers do.

A handler gets values: the task and its place in the spec, its resolved inputs and its
folders (TaskCall), and what every task of the run shares (RunServices). It fills in the
task's output folder, logs and outputs, and returns how the task ended (TaskEnd), which
the runner records; it holds nothing of the runner. One handler per kind of task: a
CustomJob task (custom_job_task here, gcpc's launcher in the emulator) and any other
container task (container_task). Hooks (TaskHooks) run around every task: the emulator's
copies to and from Cloud Storage, and its cache.
"""

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Protocol

from ..spec.cloud_paths import PathMap
from .interpreter import TaskInterpreter
from .plan import PlannedTask, TaskFailure, TaskRun, TaskState
from .processes import Outcome, Supervisor, exit_reason, tail

INTERRUPTED = "the run was interrupted"


@dataclass(frozen=True)
class TaskEnd:
    """How a task ended: its final state, exit code, and why it failed or did not run."""

    state: TaskState
    exit_code: Optional[int] = None
    error: Optional[str] = None  # the failure's message(), or why the task did not run
    failure: Optional[TaskFailure] = None

    @classmethod
    def failed(cls, failure: TaskFailure) -> "TaskEnd":
        return cls(TaskState.FAILED, failure.exit_code, failure.message(), failure)


@dataclass(frozen=True)
class TaskCall:
    """One task to run: its run record (the handler fills in output_dir, log_paths and
    outputs), its task in the spec, its resolved inputs, its folder and its TMPDIR (a
    folder of its own, removed when the task ends, as a container's /tmp goes with it)."""

    task: TaskRun
    planned: PlannedTask
    inputs: Dict[str, Any]
    folder: Path
    tmp: str


@dataclass(frozen=True)
class RunServices:
    """What every task of one run shares: where cloud paths live, the interpreter and
    environment of its processes, their supervisor, the run's system labels (what Vertex
    passes gcpc's launcher in VERTEX_AI_PIPELINES_RUN_LABELS) and the run's stop."""

    paths: PathMap
    interpreter: TaskInterpreter
    supervisor: Supervisor
    labels: Mapping[str, str]
    stopped: threading.Event  # set once the run is stopping

    @property
    def stopping(self) -> bool:
        return self.stopped.is_set()


class TaskHandler(ABC):
    """Runs one kind of task. The runner calls `prepare()` when a run with such tasks
    starts and `close()` when it ends, for the handlers it made itself."""

    @abstractmethod
    def run(self, call: TaskCall, services: RunServices) -> TaskEnd:
        """Runs the task to its end; raising fails it with the exception's text."""

    def prepare(self) -> None:  # noqa: B027  # optional: most handlers have nothing to start early
        """Starts what the first task will need, so that it is ready by then."""

    def close(self) -> None:  # noqa: B027  # optional: most handlers leave nothing running
        """Ends what `prepare` or the tasks started."""


class TaskHooks(Protocol):
    """Called around each task by the runner that was given them."""

    def before(self, task: TaskRun, inputs: Mapping[str, Any], cache_key: Optional[str]) -> Optional[TaskEnd]:
        """Before the task runs: None to run it, or the end that stands for its run (a
        cache hit: CACHED). `cache_key` is the task's, or None when it is not cached."""

    def after(self, task: TaskRun) -> None:
        """After the task ended, however it ended."""


def processes_end(outcome: Outcome, stopping: bool) -> TaskEnd:
    """How a task whose processes ended as `outcome` ended."""
    if stopping and any(c != 0 for c in outcome.codes) or not outcome.codes:
        return TaskEnd(TaskState.CANCELLED, None, INTERRUPTED)
    failed = [(c, log) for c, log in zip(outcome.codes, outcome.logs, strict=True) if c != 0]
    if not failed:
        return TaskEnd(TaskState.SUCCEEDED, 0)
    code, log = failed[0]
    return TaskEnd.failed(TaskFailure(exit_reason(code), code, log, tail(log)))
