"""Runs a compiled pipeline.yaml on this machine, as host processes.

The same file that Vertex runs: each CustomTrainingJobOp task starts its worker pools'
container commands as processes, with the environment Vertex gives a CustomJob; other
container tasks (the collector) run their container command with the KFP executor input
Vertex would give them. gs:// and /gcs/ paths are mapped to local folders. There is no
Docker here, so the image is not used: the app, this package and its dependencies must be
installed locally.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .cloud_paths import PathMap
from .fork_server import ForkServer, python_invocation
from .settings import REDUCTION_SERVER_IMAGE

CUSTOM_JOB_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"
# CACHED: a hook found this task's earlier success (Vertex's caching) and it did not run.
FINAL_STATES = ("SUCCEEDED", "CACHED", "FAILED", "SKIPPED", "CANCELLED")
SUCCESS_STATES = ("SUCCEEDED", "CACHED")
LOG_TAIL_LINES = 20
KILL_GRACE_S = 5.0
# Vertex's pool order: chief, workers, parameter servers (or reduction server), evaluators.
TF_TASK_TYPES = ("chief", "worker", "ps", "evaluator")
_PLACEHOLDER = re.compile(r"\{\{\$(?P<expr>[^}]*)\}\}")


class UnsupportedPipeline(ValueError):
    """The pipeline uses something this runner cannot execute on a host."""


@dataclass
class TaskRun:
    """One task's progress and outcome."""

    name: str
    display_name: str
    kind: str  # custom_job or container
    dependencies: List[str]
    run_after_failure: bool
    group: Optional[str] = None  # the ParallelFor loop the task is an iteration of
    state: str = "PENDING"
    exit_code: Optional[int] = None
    error: Optional[str] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    output_dir: Optional[str] = None
    log_paths: List[str] = field(default_factory=list)
    outputs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    state: str
    tasks: Dict[str, TaskRun]

    def to_dict(self) -> Dict[str, Any]:
        return {"state": self.state, "tasks": {k: asdict(v) for k, v in self.tasks.items()}}


def load_pipeline(path: Path) -> Dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on big specs
    return next(yaml.load_all(Path(path).read_text(encoding="utf-8"), Loader=loader))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def cluster_env(pools: Sequence[int], pool: int, index: int, ports: Dict[Tuple[int, int], int], job: Dict[str, Any]) -> Dict[str, str]:
    """CLUSTER_SPEC, TF_CONFIG and the torch.distributed variables for one replica."""
    cluster = {f"workerpool{p}": [f"127.0.0.1:{ports[(p, i)]}" for i in range(n)] for p, n in enumerate(pools) if n}
    env = {
        "CLUSTER_SPEC": json.dumps(
            {
                "cluster": cluster,
                "environment": "cloud",
                "task": {"type": f"workerpool{pool}", "index": index},
                "job": job,
            }
        ),
        "TF_CONFIG": json.dumps(
            {
                "cluster": {TF_TASK_TYPES[p]: cluster[f"workerpool{p}"] for p, n in enumerate(pools) if n and p < len(TF_TASK_TYPES)},
                "task": {"type": TF_TASK_TYPES[pool] if pool < len(TF_TASK_TYPES) else f"workerpool{pool}", "index": index},
                "environment": "cloud",
            }
        ),
    }
    if pool <= 1:  # chief and workers form the torch.distributed world
        env.update(
            RANK=str(index if pool == 0 else pools[0] + index),
            WORLD_SIZE=str(sum(pools[:2])),
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(ports[(0, 0)]),
        )
    return env


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
    ) -> None:
        self.spec = pipeline
        self.paths = paths
        self.work_dir = Path(work_dir).resolve()
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.cwd = cwd or os.getcwd()
        self.extra_env = dict(extra_env or {})
        self.python = python
        self.console = console if console is not None else sys.stdout
        self.on_change = on_change
        self.parameters = dict(parameters or {})
        # Modules a fork server imports once for all Python commands; None: no server.
        # A server started earlier (`fork_server`) has imported them while the caller worked.
        self.preload = list(preload) if preload is not None else fork_server.preload if fork_server else None
        self._server: Optional[ForkServer] = fork_server
        # Called around each task: hooks.before(task, inputs), which may answer "CACHED" to
        # skip the task as done already, and hooks.after(task).
        self.hooks = hooks
        self.run_name = f"local-{int(time.time())}"
        self._lock = threading.Lock()
        self._procs: Dict[int, Any] = {}
        self._cancelled = threading.Event()
        self._plan()

    # ---- planning -------------------------------------------------------------------

    def _executor(self, task: Mapping[str, Any]) -> Mapping[str, Any]:
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            raise UnsupportedPipeline(f"task {task['taskInfo']['name']!r}: only container executors run locally")
        return executor["container"]

    def _kind(self, name: str, task: Mapping[str, Any]) -> str:
        container = self._executor(task)
        text = " ".join(container.get("command", []) + container.get("args", []))
        if CUSTOM_JOB_LAUNCHER in text:
            return "custom_job"
        if "google_cloud_pipeline_components" in text:
            raise UnsupportedPipeline(f"task {name!r} calls a Google Cloud service the local runner cannot emulate")
        return "container"

    def _loop(self, name: str, task: Mapping[str, Any], component: Mapping[str, Any]) -> List[str]:
        """Expands a ParallelFor over raw items into one task per item; returns their names."""
        iterator = task.get("parameterIterator", {})
        inner = component["dag"]["tasks"]
        if "raw" not in iterator.get("items", {}) or len(inner) != 1:
            raise UnsupportedPipeline(f"task {name!r}: only loops of one task over items fixed at compile time run locally")
        (inner_name, inner_task), = inner.items()
        items = json.loads(iterator["items"]["raw"])
        limit = int(task.get("iteratorPolicy", {}).get("parallelismLimit", 0) or 0)
        if limit:
            self._limits[name] = limit
        names = []
        for i, item in enumerate(items):
            expanded = f"{inner_name}-{i}"
            shown = item.get("display_name") if isinstance(item, dict) else None
            self._specs[expanded] = inner_task
            self._items[expanded] = (iterator["itemInput"], item)
            self._add(expanded, inner_task, shown or f"{inner_name} #{i}", task, group=name)
            names.append(expanded)
        return names

    def _add(self, name: str, task: Mapping[str, Any], shown: str, outer: Mapping[str, Any], group: Optional[str] = None) -> None:
        policy = outer.get("triggerPolicy", {}).get("strategy", "ALL_UPSTREAM_TASKS_SUCCEEDED")
        self.tasks[name] = TaskRun(
            name=name,
            display_name=shown,
            kind=self._kind(name, task),
            dependencies=list(outer.get("dependentTasks", [])),
            run_after_failure=policy == "ALL_UPSTREAM_TASKS_COMPLETED",
            group=group,
        )

    def _plan(self) -> Dict[str, TaskRun]:
        self.tasks: Dict[str, TaskRun] = {}
        self._specs: Dict[str, Mapping[str, Any]] = {}
        self._items: Dict[str, Tuple[str, Any]] = {}
        self._limits: Dict[str, int] = {}
        groups: Dict[str, List[str]] = {}
        for name, task in self.spec["root"]["dag"]["tasks"].items():
            component = self.spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                groups[name] = self._loop(name, task, component)
            else:
                self._specs[name] = task
                self._add(name, task, task.get("taskInfo", {}).get("name", name), task)
        for run in self.tasks.values():  # a task after a loop waits for every iteration
            run.dependencies = [d for dep in run.dependencies for d in groups.get(dep, [dep])]
        return self.tasks

    def _inputs(self, name: str) -> Dict[str, Any]:
        """The task's parameter values: constants, loop items, pipeline parameters, defaults."""
        task = self._specs[name]
        component = self.spec["components"][task["componentRef"]["name"]]
        values: Dict[str, Any] = {}
        for key, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if "defaultValue" in definition:
                values[key] = definition["defaultValue"]
        root_defaults = {
            k: d.get("defaultValue") for k, d in self.spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()
        }
        item_input, item = self._items.get(name, (None, None))
        for key, given in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in given:
                values[key] = given["runtimeValue"]["constant"]
            elif "componentInputParameter" in given and given["componentInputParameter"] == item_input:
                values[key] = _select(item, given.get("parameterExpressionSelector"), name, key)
            elif "componentInputParameter" in given:
                ref = given["componentInputParameter"]
                values[key] = self.parameters.get(ref, root_defaults.get(ref))
            else:
                raise UnsupportedPipeline(f"task {name!r}: input {key!r} comes from another task's output")
        return values

    def cache_key(self, name: str) -> Optional[str]:
        """The task's cache key as Vertex forms it (its executor and its input values), or
        None when the spec turns its caching off."""
        task = self._specs[name]
        if not task.get("cachingOptions", {}).get("enableCache"):
            return None
        payload = {"executor": self._executor(task), "inputs": self._inputs(name)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    # ---- running ----------------------------------------------------------------------

    def run(self) -> RunResult:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._shim_dir = self._python_shims()
        done: "Queue[str]" = Queue()
        running: Dict[str, threading.Thread] = {}
        pending = list(self.tasks)
        try:
            self._schedule(done, running, pending)
        except KeyboardInterrupt:
            self.cancel()
            for thread in running.values():
                thread.join(timeout=KILL_GRACE_S * 2)
            for name in pending:
                self._set(self.tasks[name], "CANCELLED", error="the run was interrupted")
            self._write_state()
            raise
        finally:
            if self._server is not None:
                self._server.close()
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
                    self._set(task, "SKIPPED", error="an upstream task did not succeed")
                    continue
                if len(running) >= self.max_parallel:
                    break
                limit = self._limits.get(task.group or "")
                if limit and sum(self.tasks[r].group == task.group for r in running) >= limit:
                    continue
                pending.remove(name)
                thread = threading.Thread(target=self._run_task, args=(task, done), daemon=True)
                running[name] = thread
                self._set(task, "RUNNING")
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
        """Stops every running process group: SIGTERM, then SIGKILL after a grace period."""
        self._cancelled.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.time() + KILL_GRACE_S
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def _set(self, task: TaskRun, state: str, **changes: Any) -> None:
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

    def _python_shims(self) -> Path:
        """`python` and `python3` on PATH that start this interpreter (venv included)."""
        shims = self.work_dir / "bin"
        shims.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            shim = shims / name
            shim.write_text(f"#!/bin/sh\nexec {shlex.quote(self.python)} \"$@\"\n", encoding="utf-8")
            shim.chmod(0o755)
        return shims

    def _base_env(self) -> Dict[str, str]:
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        env["PATH"] = f"{self._shim_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run_task(self, task: TaskRun, done: "Queue[str]") -> None:
        try:
            if self._cancelled.is_set():
                self._set(task, "CANCELLED", error="the run was interrupted")
            else:
                cached = self.hooks is not None and self.hooks.before(task, self._inputs(task.name)) == "CACHED"
                if cached:
                    self._set(task, "CACHED")
                elif task.kind == "custom_job":
                    self._run_custom_job(task)
                else:
                    self._run_container(task)
        except Exception as e:  # a task's own failure must not stop the others
            self._set(task, "FAILED", error=f"{type(e).__name__}: {e}")
        finally:
            try:
                if self.hooks is not None:
                    self.hooks.after(task)
            except Exception as e:
                self._set(task, "FAILED", error=f"{type(e).__name__} after the task: {e}")
            done.put(task.name)

    def _command(self, command: Sequence[str]) -> List[str]:
        command = [self.paths.in_text(c) for c in command]
        if command and re.fullmatch(r"python[0-9.]*", os.path.basename(command[0])):
            command[0] = self.python
        return command

    def _run_custom_job(self, task: TaskRun) -> None:
        inputs = self._inputs(task.name)
        pools = list(inputs.get("worker_pool_specs") or [])  # positions matter: an empty pool stays
        if not pools or not pools[0]:
            raise UnsupportedPipeline(f"task {task.name!r} has no chief worker pool")
        base_uri = inputs.get("base_output_directory") or ""
        output_dir = self.paths.local(base_uri) if base_uri else str(self.work_dir / task.name)
        os.makedirs(output_dir, exist_ok=True)
        task.output_dir = output_dir
        # The reduction server only speeds up all-reduce between GPU hosts on Vertex; the
        # app's replicas run without it, so it is left out here.
        skipped = {i for i, p in enumerate(pools) if p and _container(p).get("image_uri") == REDUCTION_SERVER_IMAGE}
        replicas = [0 if not p or i in skipped else int(p.get("replica_count", 1)) for i, p in enumerate(pools)]
        ports = {(p, i): free_port() for p, n in enumerate(replicas) for i in range(n)}
        job = {"display_name": inputs.get("display_name", task.display_name), "worker_pool_specs": pools}
        env = self._base_env()
        env["CLOUD_ML_JOB_ID"] = f"{self.run_name}-{task.name}"
        if base_uri:
            for var, sub in (("AIP_MODEL_DIR", "model"), ("AIP_CHECKPOINT_DIR", "checkpoints"), ("AIP_TENSORBOARD_LOG_DIR", "logs")):
                env[var] = os.path.join(output_dir, sub) + "/"
        launches = []
        for p, pool in enumerate(pools):
            if not replicas[p]:
                continue
            if "python_package_spec" in pool:
                spec = pool["python_package_spec"]
                command = self._command(["python", "-m", spec["python_module"], *spec.get("args", [])])
                packages = [self.paths.local(uri) for uri in spec.get("package_uris", [])]
                pythonpath = os.pathsep.join([*packages, *[p for p in [env.get("PYTHONPATH", "")] if p]])
                pool_env = {"PYTHONPATH": pythonpath}
            elif "container_spec" in pool:
                spec = pool["container_spec"]
                command = self._command(list(spec.get("command", [])) + list(spec.get("args", [])))
                pool_env = {}
            else:
                raise UnsupportedPipeline(f"task {task.name!r} pool {p}: only container and Python package pools run locally")
            pool_env.update({e["name"]: self.paths.in_text(str(e.get("value", ""))) for e in spec.get("env", [])})
            for i in range(replicas[p]):
                name = "trial.log" if (p, i) == (0, 0) else f"trial-workerpool{p}-{i}.log"
                prefix = f"[{task.display_name.split(' ')[0]}]" if (p, i) == (0, 0) else f"[{task.display_name.split(' ')[0]} workerpool{p}-{i}]"
                launches.append(
                    (command, {**env, **pool_env, **cluster_env(replicas, p, i, ports, job)}, os.path.join(output_dir, name), prefix)
                )
        task.log_paths = [log for _, _, log, _ in launches]
        self._finish(task, *self._run_processes(launches))

    def _run_container(self, task: TaskRun) -> None:
        container = self._executor(self._specs[task.name])
        component = self.spec["components"][self._specs[task.name]["componentRef"]["name"]]
        task_dir = self.work_dir / task.name
        task_dir.mkdir(parents=True, exist_ok=True)
        task.output_dir = str(task_dir)
        executor_input = self._executor_input(task.name, component, task_dir)
        resolve = lambda text: _resolve_placeholders(text, executor_input)  # noqa: E731
        command = self._command([resolve(c) for c in container.get("command", []) + container.get("args", [])])
        log = str(task_dir / "task.log")
        task.log_paths = [log]
        # Not streamed: the KFP executor logs its whole input, every trial included.
        codes, logs = self._run_processes([(command, self._base_env(), log, None)])
        output_file = executor_input["outputs"]["outputFile"]
        if os.path.exists(output_file):
            task.outputs = json.loads(Path(output_file).read_text(encoding="utf-8"))
        self._finish(task, codes, logs)

    def _executor_input(self, name: str, component: Mapping[str, Any], task_dir: Path) -> Dict[str, Any]:
        outputs: Dict[str, Any] = {"outputFile": str(task_dir / "executor_output.json")}
        definitions = component.get("outputDefinitions", {})
        if definitions.get("artifacts"):
            outputs["artifacts"] = {
                key: {
                    "artifacts": [
                        {"name": key, "type": d.get("artifactType", {}), "uri": str(task_dir / key), "metadata": {}}
                    ]
                }
                for key, d in definitions["artifacts"].items()
            }
        if definitions.get("parameters"):
            outputs["parameters"] = {key: {"outputFile": str(task_dir / "outputs" / key)} for key in definitions["parameters"]}
        values = self.paths.in_value(self._inputs(name))
        return {"inputs": {"parameterValues": values}, "outputs": outputs}

    def _finish(self, task: TaskRun, codes: List[int], logs: List[str]) -> None:
        if self._cancelled.is_set() and any(c != 0 for c in codes):
            self._set(task, "CANCELLED", exit_code=None, error="the run was interrupted")
            return
        failed = [(c, log) for c, log in zip(codes, logs, strict=True) if c != 0]
        if not failed:
            self._set(task, "SUCCEEDED", exit_code=0)
            return
        code, log = failed[0]
        error = f"{exit_reason(code)}; last lines of {log}:\n{tail(log)}"
        self._set(task, "FAILED", exit_code=code, error=error)

    def _start(self, command: List[str], env: Dict[str, str], log_path: str) -> Any:
        """Starts one process writing to `log_path`: forked from the preloaded server when
        it is a Python command the server can run, else a plain subprocess."""
        Path(log_path).write_text("", encoding="utf-8")
        if self.preload is not None and command[0] == self.python and python_invocation(command):
            with self._lock:
                if self._server is None:
                    self._server = ForkServer(self.python, self.preload, self.cwd, self._base_env())
            return self._server.spawn(command, env, self.cwd, log_path)
        with open(log_path, "ab") as log_file:
            return subprocess.Popen(
                command,
                cwd=self.cwd,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _run_processes(
        self, launches: Sequence[Tuple[List[str], Dict[str, str], str, Optional[str]]]
    ) -> Tuple[List[int], List[str]]:
        """Starts every replica, logs its output (streamed with a prefix unless None), and
        stops the rest when one fails. Returns exit codes and logs, the first failure first."""
        procs: List[Any] = []
        followers = []
        first_failure: Optional[int] = None
        try:
            for command, env, log_path, prefix in launches:
                try:
                    proc = self._start(command, env, log_path)
                except OSError as e:
                    with open(log_path, "a", encoding="utf-8") as log_file:
                        log_file.write(f"could not start {command[0]!r}: {e}\n")
                    raise
                with self._lock:
                    self._procs[proc.pid] = proc
                procs.append(proc)
                if prefix is not None:
                    follower = threading.Thread(target=self._follow, args=(proc, log_path, prefix), daemon=True)
                    follower.start()
                    followers.append(follower)
            failed_at: Optional[float] = None
            while True:
                codes = [p.poll() for p in procs]  # every one, so each returncode is fresh
                if first_failure is None and any(c not in (None, 0) for c in codes):
                    first_failure = next(i for i, c in enumerate(codes) if c not in (None, 0))
                if all(c is not None for c in codes):
                    break
                if failed_at is None and first_failure is not None:
                    failed_at = time.time()
                    for p in procs:
                        if p.poll() is None:
                            _signal_group(p, signal.SIGTERM)
                elif failed_at is not None and time.time() - failed_at > KILL_GRACE_S:
                    for p in procs:
                        if p.poll() is None:
                            _signal_group(p, signal.SIGKILL)
                time.sleep(0.02)
        finally:
            for follower in followers:
                follower.join()
            with self._lock:
                for p in procs:
                    self._procs.pop(p.pid, None)
        codes = [p.returncode for p in procs]
        if first_failure is not None:  # the cause first: the others were stopped because of it
            codes.insert(0, codes.pop(first_failure))
            launches = [launches[first_failure]] + [l for i, l in enumerate(launches) if i != first_failure]
        return codes, [log for _, _, log, _ in launches]

    def _follow(self, proc: Any, log_path: str, prefix: str) -> None:
        """Streams new lines of a process's log to the console until the process ends."""
        with open(log_path, encoding="utf-8", errors="replace") as f:
            partial = ""
            while True:
                ended = proc.poll() is not None
                chunk = f.read()
                if chunk:
                    lines = (partial + chunk).split("\n")
                    partial = lines.pop()
                    with self._lock:
                        for line in lines:
                            self.console.write(f"{prefix} {line}\n")
                        self.console.flush()
                elif ended:
                    break
                else:
                    time.sleep(0.05)
            if partial:
                with self._lock:
                    self.console.write(f"{prefix} {partial}\n")
                    self.console.flush()


def _container(pool: Mapping[str, Any]) -> Mapping[str, Any]:
    return pool.get("container_spec") or {}


def _select(item: Any, selector: Optional[str], task: str, key: str) -> Any:
    """Applies KFP's `parseJson(string_value)["field"]` selector to a loop item."""
    if not selector:
        return item
    found = re.fullmatch(r'parseJson\(string_value\)\["([^"]+)"\]', selector)
    if found is None or not isinstance(item, dict):
        raise UnsupportedPipeline(f"task {task!r}: input {key!r} uses the selector {selector!r}")
    return item.get(found.group(1))


def _signal_group(proc: Any, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _resolve_placeholders(text: str, executor_input: Mapping[str, Any]) -> str:
    """Fills KFP's runtime placeholders ({{$}}, {{$.inputs.parameters['x']}}, ...)."""

    def one(match: "re.Match[str]") -> str:
        expr = match.group("expr")
        if expr == "":
            return json.dumps(executor_input)
        found = re.fullmatch(r"\.inputs\.parameters\['([^']+)'\]", expr)
        if found:
            value = executor_input["inputs"]["parameterValues"].get(found.group(1))
            return value if isinstance(value, str) else json.dumps(value)
        found = re.fullmatch(r"\.outputs\.parameters\['([^']+)'\]\.output_file", expr)
        if found:
            return executor_input["outputs"]["parameters"][found.group(1)]["outputFile"]
        found = re.fullmatch(r"\.outputs\.artifacts\['([^']+)'\]\.(path|uri)", expr)
        if found:
            return executor_input["outputs"]["artifacts"][found.group(1)]["artifacts"][0]["uri"]
        raise UnsupportedPipeline(f"placeholder {match.group(0)} is not supported by the local runner")

    return _PLACEHOLDER.sub(one, text)


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
