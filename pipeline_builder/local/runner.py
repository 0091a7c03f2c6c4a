"""Runs a compiled pipeline.yaml on this machine, as host processes.

The same file that Vertex runs. The run is split as kfp.local splits its runner: plan
reads the spec into task runs, resolver fills their inputs as the KFP backend does, this
module schedules them (dependencies, trigger policies, parallelism, hooks, stops) and
hands each to the handler of its kind (handlers: custom_job_task runs a CustomJob task
through gcpc's own launcher code, container_task any other container task as its
command); processes supervises what they start, vertex_env gives it Vertex's
environment. gs:// and /gcs/ paths are mapped to local folders. There is no Docker here,
so the image is not used: the app, this package and its dependencies must be installed
locally.
"""

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Callable, Dict, List, Mapping, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..spec.cloud_paths import PathMap
from .container_task import ContainerHandler
from .custom_job_task import CustomJobHandler
from .forked import ForkServer
from .gcpc_check import CustomJobChecker
from .handlers import INTERRUPTED, RunServices, TaskCall, TaskEnd, TaskHandler, TaskHooks
from .interpreter import TaskInterpreter
from .plan import FINAL_STATES, SUCCESS_STATES, PipelinePlan, RunResult, TaskFailure, TaskKind, TaskRun, TaskState, load_pipeline
from .processes import Console, Supervisor
from .resolver import RunContext
from .sessions import GRACE_S
from .settings import RunnerSettings
from .signals import stop_signals


def local_context(started: float) -> RunContext:
    """The pipeline-level placeholder values of a local run started at `started`."""
    name = f"local-{int(started)}"
    return RunContext(
        job_name=name,
        job_resource_name=f"projects/local/locations/local/pipelineJobs/{name}",
        job_id=str(int(started * 1000)),
        create_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    )


def system_labels(context: RunContext) -> Dict[str, str]:
    """What Vertex passes to gcpc's launcher in VERTEX_AI_PIPELINES_RUN_LABELS."""
    return {"vertex-ai-pipelines-run-billing-id": context.job_id}


class LocalRunner:
    """Executes one pipeline spec; `run()` returns when every task has ended.

    `console` gets the trials' streamed logs (default: stdout); `on_change(task)` is
    called at each state change; `hooks` run around each task; `fork_server` is one
    started earlier, whose imports (and CustomJob checker) the run uses;
    `custom_job_handler` runs CustomJob tasks in place of this machine's own way (the
    emulator runs gcpc's launcher), and belongs to the caller; so does
    `custom_job_checker`, a CustomJob checker started earlier (with a cache of verdicts,
    say) that this machine's way uses.
    """

    def __init__(
        self,
        pipeline: Mapping[str, Any],
        settings: RunnerSettings,
        *,
        console: Optional[Console] = None,
        on_change: Optional[Callable[[TaskRun], None]] = None,
        hooks: Optional[TaskHooks] = None,
        fork_server: Optional[ForkServer] = None,
        custom_job_handler: Optional[TaskHandler] = None,
        custom_job_checker: Optional[CustomJobChecker] = None,
    ) -> None:
        self.settings = settings
        self.on_change = on_change
        self.hooks = hooks
        self.work_dir = Path(settings.work_dir).resolve()
        self.max_parallel = settings.parallel_limit()
        self.cwd = settings.cwd or os.getcwd()
        started = time.time()
        self.context = settings.context or local_context(started)
        self.plan = PipelinePlan(pipeline, settings.parameters, self.context)
        self.tasks: Dict[str, TaskRun] = self.plan.tasks
        self.interpreter = TaskInterpreter(settings.python, self.work_dir, settings.paths, settings.extra_env)
        # A server started earlier has imported its modules while the caller worked.
        preload = settings.preload if settings.preload is not None else fork_server.preload if fork_server else None
        console = console if console is not None else sys.stdout
        supervisor = Supervisor(settings.python, self.cwd, console, preload, fork_server, self.interpreter.environment())
        self._stopped = threading.Event()
        self.services = RunServices(settings.paths, self.interpreter, supervisor, system_labels(self.context), self._stopped)
        self._own_handlers: List[TaskHandler] = []
        if custom_job_handler is None:
            checker = custom_job_checker or (fork_server.custom_jobs if fork_server is not None else None)
            custom_job_handler = CustomJobHandler(settings.python, int(started * 1000) * 1000, checker)
            self._own_handlers.append(custom_job_handler)
        self.handlers: Dict[TaskKind, TaskHandler] = {
            TaskKind.CUSTOM_JOB: custom_job_handler,
            TaskKind.CONTAINER: ContainerHandler(),
        }
        self._lock = threading.Lock()

    def system_labels(self) -> Dict[str, str]:
        """What Vertex passes to gcpc's launcher in VERTEX_AI_PIPELINES_RUN_LABELS."""
        return dict(self.services.labels)

    # ---- running ----------------------------------------------------------------------

    def run(self) -> RunResult:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.interpreter.write()
        for handler in self._own_handlers:
            if any(self.handlers[t.kind] is handler for t in self.tasks.values()):
                handler.prepare()
        done: "Queue[str]" = Queue()
        running: Dict[str, threading.Thread] = {}
        pending = list(self.tasks)
        supervisor = self.services.supervisor
        with stop_signals(supervisor.hurry):
            try:
                self._schedule(done, running, pending)
            except KeyboardInterrupt:
                self.cancel()
                for thread in running.values():
                    thread.join(timeout=GRACE_S * 2)
                for name in pending:
                    self._set_state(self.tasks[name], TaskState.CANCELLED, error=INTERRUPTED)
                self._write_state()
                raise
            finally:
                supervisor.close()
                for handler in self._own_handlers:
                    handler.close()
        self._write_state()
        return self.result()

    def _schedule(self, done: "Queue[str]", running: Dict[str, threading.Thread], pending: List[str]) -> None:
        """Starts each task when its upstream tasks have ended and a slot is free."""
        while pending or running:
            for name in list(pending):
                task = self.tasks[name]
                upstream = [self.tasks[d].state for d in task.dependencies]
                # An upstream task is done once its thread is: its hooks (the emulator's upload
                # of what it wrote) run after its final state is set.
                if any(s not in FINAL_STATES for s in upstream) or any(d in running for d in task.dependencies):
                    continue
                if any(s not in SUCCESS_STATES for s in upstream) and not task.run_after_failure:
                    pending.remove(name)
                    self._set_state(task, TaskState.SKIPPED, error="an upstream task did not succeed")
                    continue
                if len(running) >= self.max_parallel:
                    break
                limit = self.plan.limits.get(task.group or "")
                if limit and sum(self.tasks[r].group == task.group for r in running) >= limit:
                    continue
                pending.remove(name)
                thread = threading.Thread(target=self._run_task, args=(task, done), daemon=True)
                running[name] = thread
                self._set_state(task, TaskState.RUNNING)
                thread.start()
            try:
                finished = done.get(timeout=0.5)
            except Empty:
                continue
            running.pop(finished).join()

    def result(self) -> RunResult:
        states = [t.state for t in self.tasks.values()]
        if TaskState.CANCELLED in states:
            state = TaskState.CANCELLED
        elif all(s in SUCCESS_STATES for s in states):
            state = TaskState.SUCCEEDED
        else:
            state = TaskState.FAILED
        return RunResult(state=state, tasks=self.tasks)

    def cancel(self) -> None:
        """Stops every running process (SIGTERM, then SIGKILL after a grace period) and
        starts no more."""
        self._stopped.set()
        self.services.supervisor.stop_all()

    def _set_state(self, task: TaskRun, state: TaskState, **changes: Any) -> None:
        with self._lock:
            task.state = state
            for key, value in changes.items():
                setattr(task, key, value)
            if state == TaskState.RUNNING:
                task.start_time = time.time()
            elif state in FINAL_STATES:
                task.end_time = time.time()
        if self.on_change is not None:
            self.on_change(task)

    def _end(self, task: TaskRun, end: TaskEnd) -> None:
        self._set_state(task, end.state, exit_code=end.exit_code, error=end.error, failure=end.failure)

    def _write_state(self) -> None:
        state = self.result().to_dict()
        (self.work_dir / "run.json").write_text(strict_json.dumps(state, indent=2, default=str), encoding="utf-8")

    def _run_task(self, task: TaskRun, done: "Queue[str]") -> None:
        try:
            self._end(task, self._outcome(task))
        except Exception as e:  # a task's own failure must not stop the others
            self._end(task, TaskEnd.failed(TaskFailure(f"{type(e).__name__}: {e}")))
        finally:
            try:
                if self.hooks is not None:
                    self.hooks.after(task)
            except Exception as e:
                self._end(task, TaskEnd.failed(TaskFailure(f"{type(e).__name__} after the task: {e}", task.exit_code)))
            done.put(task.name)

    def _outcome(self, task: TaskRun) -> TaskEnd:
        """Runs the task, unless the run is stopping or a hook stands for its run."""
        if self._stopped.is_set():
            return TaskEnd(TaskState.CANCELLED, error=INTERRUPTED)
        planned = self.plan.planned[task.name]
        inputs = self.plan.inputs(task.name)
        if self.hooks is not None:
            instead = self.hooks.before(task, inputs, planned.cache_key(inputs))
            if instead is not None:
                return instead
        folder = self.work_dir / task.name
        tmp = folder / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            return self.handlers[task.kind].run(TaskCall(task, planned, inputs, folder, str(tmp)), self.services)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_pipeline(
    path: Path,
    paths: Optional[PathMap] = None,
    work_dir: Optional[Path] = None,
    max_parallel: Optional[int] = None,
    cwd: Optional[str] = None,
) -> RunResult:
    """Runs the pipeline at `path`; by default cloud paths land in `<its folder>/gcs/`."""
    path = Path(path).resolve()
    settings = RunnerSettings(
        paths=paths or PathMap(str(SweepFiles(path.parent).run_local_buckets)),
        work_dir=work_dir or path.parent / f".{path.stem}-run",
        max_parallel=max_parallel,
        cwd=cwd,
    )
    return LocalRunner(load_pipeline(path), settings).run()
