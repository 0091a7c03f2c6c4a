"""Reads a compiled pipeline spec into the task runs the local runner executes.

What Vertex's orchestrator derives from the spec before anything runs: one run per
container task, one per iteration of a loop over items fixed at compile time (each with
its loop DAG's input values), the upstream runs each waits for, whether it runs after an
upstream failure, and each loop's parallelism limit.
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .resolver import RunContext, loop_items, resolve_inputs, root_scope

CUSTOM_JOB_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"


class TaskKind(str, Enum):
    """How a task runs here: a CustomJob task (gcpc's launcher), or its container's command."""

    CUSTOM_JOB = "custom_job"
    CONTAINER = "container"

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # as the name's: equal to it, so one key in a dict or set
        return hash(self.value)


class TaskState(str, Enum):
    """A task run's state, spelled as Vertex spells a pipeline task's state.

    A `str` enum: it compares equal to, and serialises as, the name Vertex uses.
    CACHED: an earlier success of the same cache key was found (Vertex's caching) and the
    task did not run.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self in SUCCESS_STATES


FINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.CACHED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED})
SUCCESS_STATES = frozenset({TaskState.SUCCEEDED, TaskState.CACHED})


@dataclass(frozen=True)
class TaskFailure:
    """Why a task failed, as values: what a reader shows is made from them, never parsed back.

    `reason` is the cause alone ("exit code 3", "the CustomJob ran past its timeout ...");
    `log_path` and `log_tail` are the log it came from and that log's last lines.
    """

    reason: str
    exit_code: Optional[int] = None
    log_path: Optional[str] = None
    log_tail: str = ""
    # The error of the CustomJob the task ran, as Vertex gives it (google.rpc code, message):
    # what a failed trial is classified by (components/failures.py).
    job_error: Optional[Tuple[int, str]] = None

    def message(self) -> str:
        """The one-text form shown in task details and errors."""
        if self.log_path is None:
            return self.reason
        return f"{self.reason}; last lines of {self.log_path}:\n{self.log_tail}"


class UnsupportedPipeline(ValueError):
    """The pipeline uses something this runner cannot execute on a host."""


@dataclass
class TaskRun:
    """One task's progress and outcome."""

    name: str
    display_name: str
    kind: TaskKind
    dependencies: List[str]
    run_after_failure: bool
    group: Optional[str] = None  # the ParallelFor loop the task is an iteration of
    state: TaskState = TaskState.PENDING
    exit_code: Optional[int] = None
    error: Optional[str] = None  # the failure's message(), or an error with no structure
    failure: Optional[TaskFailure] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    output_dir: Optional[str] = None
    log_paths: List[str] = field(default_factory=list)
    outputs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    state: TaskState  # SUCCEEDED, FAILED or CANCELLED
    tasks: Dict[str, TaskRun]

    def to_dict(self) -> Dict[str, Any]:
        return {"state": self.state, "tasks": {k: asdict(v) for k, v in self.tasks.items()}}


@dataclass
class PlannedTask:
    """What a task run needs from the spec: its task, component, container and inputs' scope."""

    spec: Mapping[str, Any]
    component: Mapping[str, Any]
    container: Mapping[str, Any]
    scope: Mapping[str, Any]  # the input values of the DAG the task belongs to

    def cache_key(self, inputs: Mapping[str, Any]) -> Optional[str]:
        """The task's cache key as Vertex forms it (its executor and its input values), or
        None when the spec turns its caching off."""
        if not self.spec.get("cachingOptions", {}).get("enableCache"):
            return None
        payload = {"executor": self.container, "inputs": inputs}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_pipeline(path: Path) -> Dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on big specs
    return next(yaml.load_all(Path(path).read_text(encoding="utf-8"), Loader=loader))


class PipelinePlan:
    """The task runs of one pipeline spec, in the spec's order."""

    def __init__(self, spec: Mapping[str, Any], parameters: Mapping[str, Any], context: RunContext) -> None:
        self.spec = spec
        self.context = context
        self.tasks: Dict[str, TaskRun] = {}
        self.planned: Dict[str, PlannedTask] = {}
        self.limits: Dict[str, int] = {}  # loop -> at most this many iterations at once
        scope = root_scope(spec, parameters)
        groups: Dict[str, List[str]] = {}
        for name, task in sorted(spec["root"]["dag"]["tasks"].items(), key=_shown_order):
            component = self._component(task)
            if "dag" in component:
                groups[name] = self._loop(name, task, component, scope)
            else:
                self._add(name, task, component, scope, task.get("taskInfo", {}).get("name", name), task)
        for run in self.tasks.values():  # a task after a loop waits for every iteration
            run.dependencies = [d for dep in run.dependencies for d in groups.get(dep, [dep])]

    def _component(self, task: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.spec["components"][task["componentRef"]["name"]]

    def _container(self, name: str, component: Mapping[str, Any]) -> Mapping[str, Any]:
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            raise UnsupportedPipeline(f"task {name!r}: only container executors run locally")
        return executor["container"]

    def _loop(self, name: str, task: Mapping[str, Any], component: Mapping[str, Any], scope: Mapping[str, Any]) -> List[str]:
        """Expands a ParallelFor into one run per item; returns their names."""
        iterator = task.get("parameterIterator")
        inner = component["dag"]["tasks"]
        if iterator is None or len(inner) != 1 or "dag" in self._component(next(iter(inner.values()))):
            raise UnsupportedPipeline(f"task {name!r}: only loops of one task over items run locally")
        ((inner_name, inner_task),) = inner.items()
        item_input = iterator["itemInput"]
        dag_values = resolve_inputs(component, task, scope, self.context, name, skip=item_input)
        limit = int(task.get("iteratorPolicy", {}).get("parallelismLimit", 0) or 0)
        if limit:
            self.limits[name] = limit
        names = []
        for i, item in enumerate(loop_items(iterator, dag_values)):
            expanded = f"{inner_name}-{i}"
            shown = item.get("display_name") if isinstance(item, dict) else None
            item_scope = {**dag_values, item_input: item}
            component = self._component(inner_task)
            self._add(expanded, inner_task, component, item_scope, shown or f"{inner_name} #{i}", task, group=name)
            names.append(expanded)
        return names

    def _add(
        self,
        name: str,
        task: Mapping[str, Any],
        component: Mapping[str, Any],
        scope: Mapping[str, Any],
        shown: str,
        outer: Mapping[str, Any],
        group: Optional[str] = None,
    ) -> None:
        container = self._container(name, component)
        policy = outer.get("triggerPolicy", {}).get("strategy", "ALL_UPSTREAM_TASKS_SUCCEEDED")
        self.planned[name] = PlannedTask(task, component, container, scope)
        self.tasks[name] = TaskRun(
            name=name,
            display_name=shown,
            kind=_kind(name, container),
            dependencies=list(outer.get("dependentTasks", [])),
            run_after_failure=policy == "ALL_UPSTREAM_TASKS_COMPLETED",
            group=group,
        )

    def inputs(self, name: str) -> Dict[str, Any]:
        """The task's parameter values, resolved as Vertex's driver resolves them."""
        planned = self.planned[name]
        return resolve_inputs(planned.component, planned.spec, planned.scope, self.context, name)


def _shown_order(item: Tuple[str, Mapping[str, Any]]) -> List[Any]:
    """Tasks are planned, and so start, in the order of the names the Vertex UI shows,
    numbers compared as numbers: a sweep's trial 0 first, trial 10 after trial 9 (the
    spec's own order is a map's, which says nothing)."""
    name, task = item
    shown = str(task.get("taskInfo", {}).get("name", name))
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", shown)]


def _kind(name: str, container: Mapping[str, Any]) -> TaskKind:
    text = " ".join(list(container.get("command", [])) + list(container.get("args", [])))
    if CUSTOM_JOB_LAUNCHER in text:
        return TaskKind.CUSTOM_JOB
    if "google_cloud_pipeline_components" in text:
        raise UnsupportedPipeline(f"task {name!r} calls a Google Cloud service the local runner cannot emulate")
    return TaskKind.CONTAINER
