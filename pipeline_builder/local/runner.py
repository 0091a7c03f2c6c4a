"""Runs a compiled pipeline.yaml on this machine, as host processes.

The same file that Vertex runs. The run is split as kfp.local splits its runner:
local_spec reads the spec into task runs, resolver fills their inputs as the KFP backend
does, this module schedules them (dependencies, trigger policies, parallelism, caching
hooks, stops), local_tasks runs one (a CustomJob task through gcpc's own launcher code,
see custom_job_check; any other container task as its command), local_processes
supervises the processes, custom_job_env gives them Vertex's environment. gs:// and /gcs/
paths are mapped to local folders. There is no Docker here, so the image is not used: the
app, this package and its dependencies must be installed locally.
"""

import hashlib
import itertools
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence

from . import fuse as local_fuse
from ..spec.cloud_paths import PathMap
from .gcpc_check import CustomJobChecker
from .fork_server import ForkServer
from .processes import KILL_GRACE_S, Supervisor, exit_reason, tail
from .plan import FINAL_STATES, SUCCESS_STATES, PipelinePlan, RunResult, TaskRun, UnsupportedPipeline, load_pipeline
from .signals import stop_signals
from .tasks import run_task
from .resolver import RunContext, fill

__all__ = [
    "FINAL_STATES",
    "LocalRunner",
    "RunResult",
    "TaskRun",
    "UnsupportedPipeline",
    "exit_reason",
    "load_pipeline",
    "run_pipeline",
    "tail",
]
# The names tests use to fill a task's payload by hand.
_resolve_placeholders = fill


class LocalRunner:
    """Executes one pipeline spec; `run()` returns when every task has ended."""

    def __init__(
        self,
        pipeline: Mapping[str, Any],
        paths: PathMap,
        work_dir: Path,
        max_parallel: Optional[int] = None,
        cwd: Optional[str] = None,
        extra_env: Optional[Mapping[str, str]] = None,
        python: str = sys.executable,
        console: Optional[IO[str]] = None,
        on_change: Optional[Callable[[TaskRun], None]] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        preload: Optional[Sequence[str]] = None,
        fork_server: Optional[ForkServer] = None,
        hooks: Any = None,
        context: Optional[RunContext] = None,
        custom_jobs: Optional[CustomJobChecker] = None,
        custom_job_task: Optional[Callable[["LocalRunner", TaskRun, Path, str], None]] = None,
    ) -> None:
        self.spec = pipeline
        self.paths = paths
        self.work_dir = Path(work_dir).resolve()
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.cwd = cwd or os.getcwd()
        self.extra_env = dict(extra_env or {})
        self.python = python
        self.on_change = on_change
        started = time.time()
        self.run_name = f"local-{int(started)}"
        self.context = context or RunContext(
            job_name=self.run_name,
            job_resource_name=f"projects/local/locations/local/pipelineJobs/{self.run_name}",
            job_id=str(int(started * 1000)),
            create_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        )
        self._job_ids = itertools.count(int(started * 1000) * 1000)
        # Called around each task: hooks.before(task, inputs), which may answer "CACHED" to
        # skip the task as done already, and hooks.after(task).
        self.hooks = hooks
        self.plan = PipelinePlan(pipeline, dict(parameters or {}), self.context)
        self.tasks: Dict[str, TaskRun] = self.plan.tasks
        # Modules a fork server imports once for all Python commands; None: no server.
        # A server started earlier (`fork_server`) has imported them while the caller worked.
        preload = list(preload) if preload is not None else fork_server.preload if fork_server else None
        self.preload = preload
        self.supervisor = Supervisor(python, self.cwd, console if console is not None else sys.stdout, preload, fork_server, {})
        self._custom_jobs = custom_jobs or (fork_server.custom_jobs if fork_server is not None else None)
        self._own_custom_jobs = False
        # Runs a CustomJob task in place of local_tasks' own path (the emulator runs gcpc's
        # launcher): called with (runner, task, task folder, its TMPDIR).
        self.custom_job_task = custom_job_task
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._shim_dir = self.work_dir / "bin"
        self.site_dir = self.work_dir / "site"

    # ---- what tasks read ------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._cancelled.is_set()

    def inputs(self, name: str) -> Dict[str, Any]:
        """The task's parameter values, as Vertex's driver resolves them."""
        return self.plan.inputs(name)

    _inputs = inputs  # with _specs and _executor, for tests that fill a payload by hand

    @property
    def _specs(self) -> Dict[str, Mapping[str, Any]]:
        return {name: planned.spec for name, planned in self.plan.planned.items()}

    def _executor(self, task: Mapping[str, Any]) -> Mapping[str, Any]:
        component = self.spec["components"][task["componentRef"]["name"]]
        return self.spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]

    def cache_key(self, name: str) -> Optional[str]:
        """The task's cache key as Vertex forms it (its executor and its input values), or
        None when the spec turns its caching off."""
        planned = self.plan.planned[name]
        if not planned.spec.get("cachingOptions", {}).get("enableCache"):
            return None
        payload = {"executor": planned.container, "inputs": self.inputs(name)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def next_job_id(self) -> str:
        """A numeric CustomJob id, as Vertex's are."""
        with self._lock:
            return str(next(self._job_ids))

    def system_labels(self) -> Dict[str, str]:
        """What Vertex passes to gcpc's launcher in VERTEX_AI_PIPELINES_RUN_LABELS."""
        return {"vertex-ai-pipelines-run-billing-id": self.context.job_id}

    def custom_jobs(self) -> CustomJobChecker:
        with self._lock:
            if self._custom_jobs is None:
                self._custom_jobs, self._own_custom_jobs = CustomJobChecker(self.python), True
            return self._custom_jobs

    def task_env(self, tmp: Optional[str] = None) -> Dict[str, str]:
        """The environment every task process starts from: this one, the caller's extra
        variables, `python` on PATH meaning this interpreter, /gcs/ routed to local folders."""
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        env["PATH"] = f"{self._shim_dir}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(self.site_dir), env.get("PYTHONPATH", "")] if p)
        env.update(local_fuse.environment(self.paths.root, self.paths.prefixes))
        if tmp is not None:
            env["TMPDIR"] = tmp
        return env

    # ---- running ----------------------------------------------------------------------

    def run(self) -> RunResult:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_interpreter_files()
        self.supervisor.server_env = self.task_env()
        if self.custom_job_task is None and any(t.kind == "custom_job" for t in self.tasks.values()):
            self.custom_jobs()  # its imports overlap with the first tasks' start
        done: "Queue[str]" = Queue()
        running: Dict[str, threading.Thread] = {}
        pending = list(self.tasks)
        with stop_signals(self.supervisor.hurry):
            try:
                self._schedule(done, running, pending)
            except KeyboardInterrupt:
                self.cancel()
                for thread in running.values():
                    thread.join(timeout=KILL_GRACE_S * 2)
                for name in pending:
                    self.set_state(self.tasks[name], "CANCELLED", error="the run was interrupted")
                self._write_state()
                raise
            finally:
                self.supervisor.close()
                if self._own_custom_jobs and self._custom_jobs is not None:
                    self._custom_jobs.close()
        self._write_state()
        return self.result()

    def _schedule(self, done: "Queue[str]", running: Dict[str, threading.Thread], pending: List[str]) -> None:
        """Starts each task when its upstream tasks have ended and a slot is free."""
        while pending or running:
            for name in list(pending):
                task = self.tasks[name]
                upstream = [self.tasks[d].state for d in task.dependencies]
                if any(s not in FINAL_STATES for s in upstream):
                    continue
                if any(s not in SUCCESS_STATES for s in upstream) and not task.run_after_failure:
                    pending.remove(name)
                    self.set_state(task, "SKIPPED", error="an upstream task did not succeed")
                    continue
                if len(running) >= self.max_parallel:
                    break
                limit = self.plan.limits.get(task.group or "")
                if limit and sum(self.tasks[r].group == task.group for r in running) >= limit:
                    continue
                pending.remove(name)
                thread = threading.Thread(target=self._run_task, args=(task, done), daemon=True)
                running[name] = thread
                self.set_state(task, "RUNNING")
                thread.start()
            try:
                finished = done.get(timeout=0.5)
            except Empty:
                continue
            running.pop(finished).join()

    def result(self) -> RunResult:
        states = [t.state for t in self.tasks.values()]
        if "CANCELLED" in states:
            state = "CANCELLED"
        elif all(s in SUCCESS_STATES for s in states):
            state = "SUCCEEDED"
        else:
            state = "FAILED"
        return RunResult(state=state, tasks=self.tasks)

    def cancel(self) -> None:
        """Stops every running process (SIGTERM, then SIGKILL after a grace period) and
        starts no more."""
        self._cancelled.set()
        self.supervisor.stop_all()

    def set_state(self, task: TaskRun, state: str, **changes: Any) -> None:
        with self._lock:
            task.state = state
            for key, value in changes.items():
                setattr(task, key, value)
            if state == "RUNNING":
                task.start_time = time.time()
            elif state in FINAL_STATES:
                task.end_time = time.time()
        if self.on_change is not None:
            self.on_change(task)

    def _write_state(self) -> None:
        state = self.result().to_dict()
        (self.work_dir / "run.json").write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")

    def _write_interpreter_files(self) -> None:
        write_interpreter_files(self._shim_dir, self.site_dir, self.python)

    def _run_task(self, task: TaskRun, done: "Queue[str]") -> None:
        try:
            if self._cancelled.is_set():
                self.set_state(task, "CANCELLED", error="the run was interrupted")
            elif self.hooks is not None and self.hooks.before(task, self.inputs(task.name)) == "CACHED":
                self.set_state(task, "CACHED")
            else:
                run_task(self, task)
        except Exception as e:  # a task's own failure must not stop the others
            self.set_state(task, "FAILED", error=f"{type(e).__name__}: {e}")
        finally:
            try:
                if self.hooks is not None:
                    self.hooks.after(task)
            except Exception as e:
                self.set_state(task, "FAILED", error=f"{type(e).__name__} after the task: {e}")
            done.put(task.name)


_SITECUSTOMIZE_TAIL = '''

install_from_environment()


def _next_sitecustomize() -> None:
    """Runs the sitecustomize this one hides, if the path has another."""
    import importlib.machinery
    import importlib.util
    import sys

    # Every one of these met so far is skipped: a run inside a trial adds its own.
    seen = sys.__dict__.setdefault("_hydra_vertex_local_sitecustomize", set())
    seen.add(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if os.path.abspath(p or ".") not in seen]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_next_sitecustomize()
'''


def write_interpreter_files(shim_dir: Path, site_dir: Path, python: str) -> None:
    """`python` and `python3` in `shim_dir` that start `python` (venv included), and the
    sitecustomize in `site_dir` that routes /gcs/ in Python processes started afresh."""
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        shim = shim_dir / name
        shim.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} \"$@\"\n", encoding="utf-8")
        shim.chmod(0o755)
    site_dir.mkdir(parents=True, exist_ok=True)
    source = Path(local_fuse.__file__).read_text(encoding="utf-8")
    (site_dir / "sitecustomize.py").write_text(source + _SITECUSTOMIZE_TAIL, encoding="utf-8")


def run_pipeline(
    path: Path,
    paths: Optional[PathMap] = None,
    work_dir: Optional[Path] = None,
    **options: Any,
) -> RunResult:
    """Runs the pipeline at `path`; by default cloud paths land in `<its folder>/gcs/`."""
    path = Path(path).resolve()
    paths = paths or PathMap(str(path.parent / "gcs"))
    work_dir = work_dir or path.parent / f".{path.stem}-run"
    return LocalRunner(load_pipeline(path), paths, work_dir, **options).run()
