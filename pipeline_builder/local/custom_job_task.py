"""Runs a CustomJob task (a trial) as Vertex runs the job it creates, on this machine.

The task's command is filled in as the KFP backend fills it, then gcpc's launcher code
turns it into the CustomJob Vertex would receive (gcpc_check); the job's replicas start
here (replicas) and stop at the job's timeout as Vertex stops them.
"""

import dataclasses
import itertools
import os
import threading
from typing import Any, Dict, Optional

from hydra_vertex_pipelines.components.failures import DEADLINE_EXCEEDED, INVALID_ARGUMENT

from .gcpc_check import CustomJobChecker, CustomJobRejected
from .handlers import RunServices, TaskCall, TaskEnd, TaskHandler, processes_end
from .plan import CUSTOM_JOB_LAUNCHER, TaskFailure, UnsupportedPipeline
from .processes import tail
from .replicas import job_output_dir, launch_replicas, parse_duration
from .resolver import executor_input, executor_outputs, filled_command
from .vertex_env import replica_counts


class CustomJobHandler(TaskHandler):
    """The CustomJob tasks of one run. `checker` is one started earlier (by a fork server);
    without it, the handler starts its own and ends it on `close()`."""

    def __init__(self, python: str, first_job_id: int, checker: Optional[CustomJobChecker] = None) -> None:
        self.python = python
        self._checker = checker
        self._own_checker = False
        self._job_ids = itertools.count(first_job_id)
        self._lock = threading.Lock()

    def checker(self) -> CustomJobChecker:
        with self._lock:
            if self._checker is None:
                self._checker, self._own_checker = CustomJobChecker(self.python), True
            return self._checker

    def prepare(self) -> None:
        self.checker()  # its imports overlap with the first tasks' start

    def close(self) -> None:
        if self._own_checker and self._checker is not None:
            self._checker.close()

    def _next_job_id(self) -> str:
        """A numeric CustomJob id, as Vertex's are."""
        with self._lock:
            return str(next(self._job_ids))

    def run(self, call: TaskCall, services: RunServices) -> TaskEnd:
        task, inputs = call.task, call.inputs
        # The trial's folder, also when its job never starts: callers find the trial by it.
        base = inputs.get("base_output_directory") or ""
        task.output_dir = services.paths.local(base) if base else str(call.folder)
        given = executor_input(inputs, executor_outputs(call.planned.component, call.folder))
        argv = filled_command(call.planned.container, given)
        launcher_args = argv[argv.index(CUSTOM_JOB_LAUNCHER) + 1 :]
        job_id = self._next_job_id()
        try:
            checked = self.checker().check(launcher_args, dict(services.labels), job_id)
        except CustomJobRejected as e:
            refused = f"gcpc's CustomJob launcher refused this task's payload, as it would on Vertex: {e}"
            return TaskEnd.failed(TaskFailure(refused))
        return self._run_job(call, services, checked["job"], job_id)

    def _run_job(self, call: TaskCall, services: RunServices, job: Dict[str, Any], job_id: str) -> TaskEnd:
        task = call.task
        job_spec = job.get("job_spec", {})
        counts = replica_counts(job_spec)
        if not counts or not counts[0]:
            raise UnsupportedPipeline(f"task {task.name!r} has no chief worker pool")
        output_dir = task.output_dir = job_output_dir(job_spec, services.paths, str(call.folder))
        os.makedirs(output_dir, exist_ok=True)
        short = task.display_name.split(" ")[0]
        launched = launch_replicas(job, job_id, services.interpreter, call.tmp, output_dir, owner=task.name, prefix=short)
        launches = [r.launch for r in launched]
        task.log_paths = [launch.log_path for launch in launches]
        timeout_text = job_spec.get("scheduling", {}).get("timeout", "")
        try:
            timeout = parse_duration(timeout_text)
        except ValueError:  # never met: gcpc's check parsed it as a Duration
            timeout = None
        outcome = services.supervisor.run(launches, timeout=timeout)
        if outcome.timed_out and not services.stopping:
            # Vertex stops a CustomJob at job_spec.scheduling.timeout and fails it.
            log = outcome.logs[0]
            reason = f"the CustomJob ran past its timeout of {timeout_text} (scheduling.timeout) and was stopped"
            return TaskEnd.failed(TaskFailure(reason, outcome.codes[0], log, tail(log), (DEADLINE_EXCEEDED, reason)))
        end = processes_end(outcome, services.stopping)
        failure = end.failure
        if failure is not None and failure.exit_code:
            # Vertex's error for a replica that exited non-zero (code 3, INVALID_ARGUMENT).
            replica = f"The replica workerpool0-0 exited with a non-zero status of {failure.exit_code} ({failure.reason})."
            end = dataclasses.replace(end, failure=dataclasses.replace(failure, job_error=(INVALID_ARGUMENT, replica)))
        return end
