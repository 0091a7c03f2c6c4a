"""What the launcher does while a local run's tasks change state: it laps the run's phase
clock (logged at DEBUG: `hydra.verbose=hydra_plugins.vertex_pipelines_launcher`).
"""

import logging
import resource
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from hydra_vertex_pipelines.pipeline_builder.local import CustomJobChecker, ForkServer, PhaseClock, TaskRun

log = logging.getLogger(__name__)


def lap(clock: "PhaseClock", name: str) -> None:
    """Ends the run's phase `name`, in a DEBUG line."""
    log.debug(f"Local run phase: {clock.lap(name).text()}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class RunWatch:
    """Called at each task state change (LocalRunner's `on_change`). Laps the clock as
    tasks start: the runner's start (until the first trial starts), the trials (until the
    collector starts), the collector (until `ended()`), with the CPU of the processes this
    one waited for (trials started afresh, the collector)."""

    def __init__(self, clock: "PhaseClock") -> None:
        self.clock = clock
        self.open = "runner start"
        self._children = _children_cpu()
        self._lock = threading.Lock()

    def _next(self, name: str) -> None:
        lap(self.clock, self.open)
        children = _children_cpu()
        if self.open == "trials" and children > self._children:  # none when they were forked
            self.clock.process("trials started here", children - self._children)
        self.open, self._children = name, children

    def __call__(self, task: "TaskRun") -> None:
        from hydra_vertex_pipelines.pipeline_builder.local import FINAL_STATES, TaskKind, TaskState

        with self._lock:
            if task.kind == TaskKind.CUSTOM_JOB:
                if task.state == TaskState.RUNNING and self.open == "runner start":
                    self._next("trials")
            elif task.state == TaskState.RUNNING and self.open != "collector":
                self._next("collector")
            elif task.state in FINAL_STATES and self.open == "collector":
                self.clock.process("collector", _children_cpu() - self._children)

    def ended(self) -> None:
        """The run's tasks have all ended."""
        with self._lock:
            self._next("results")


def log_phases(clock: "PhaseClock", server: Optional["ForkServer"], checker: "CustomJobChecker") -> None:
    """The run's phases and its helper processes' CPU time, in two DEBUG lines."""
    from hydra_vertex_pipelines.pipeline_builder.local import Reaper, process_cpu

    if not log.isEnabledFor(logging.DEBUG):
        return
    if server is not None:
        clock.process("fork server", server.helper.cpu_s)
        clock.process("forked trials", server.helper.children_cpu_s)
    clock.process("CustomJob check helper", checker.cpu_s)
    reaper = process_cpu(Reaper.shared().proc.pid)
    clock.process("reaper", reaper[0] if reaper else None)
    phases = ", ".join(p.text() for p in clock.phases)
    log.debug(f"Local run phases: {phases}; {clock.total_s():.2f} s in all")
    cache = checker.cache
    verdicts = f"{cache.hits} verdicts from the cache, " if cache is not None else "no cache, "
    helper = f"{checker.checked} checked by the helper" if checker.started else "the helper not started"
    cpu = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in clock.processes.items())
    log.debug(f"Local run CPU of other processes: {cpu}; CustomJob checks: {verdicts}{helper} ({checker.wait_s:.2f} s waited)")
