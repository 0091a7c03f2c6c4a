"""Runs one task of a local run: a CustomJob task as Vertex runs the job it creates, any
other container task as its container command.

A CustomJob task's command is filled in as the KFP backend fills it, then gcpc's launcher
code turns it into the CustomJob Vertex would receive (custom_job_check); the replicas
start from that job's worker pools, with the environment Vertex gives them
(custom_job_env), and stop at the job's timeout as Vertex stops it. Every task gets a
temporary folder of its own (TMPDIR), removed when it ends, as a container's /tmp goes
with the container.
"""

import json
import os
import shutil
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from hydra_vertex_pipelines.components.sweep_files import LOG_FILE

from .gcpc_check import CustomJobRejected
from .vertex_env import cluster_ports, job_environment, replica_counts, replica_environment, replicas
from .processes import Launch, Outcome, exit_reason, python_command, tail
from .plan import CUSTOM_JOB_LAUNCHER, TaskRun, UnsupportedPipeline
from .resolver import executor_input, fill

if TYPE_CHECKING:
    from .runner import LocalRunner


def _outputs(component: Mapping[str, Any], task_dir: Path) -> Dict[str, Any]:
    """Where the task's outputs go, in the executor input's form."""
    outputs: Dict[str, Any] = {"outputFile": str(task_dir / "executor_output.json")}
    definitions = component.get("outputDefinitions", {})
    if definitions.get("artifacts"):
        outputs["artifacts"] = {
            key: {"artifacts": [{"name": key, "type": d.get("artifactType", {}), "uri": str(task_dir / key), "metadata": {}}]}
            for key, d in definitions["artifacts"].items()
        }
    if definitions.get("parameters"):
        outputs["parameters"] = {key: {"outputFile": str(task_dir / "outputs" / key)} for key in definitions["parameters"]}
    return outputs


def _seconds(duration: str) -> Optional[float]:
    """A protobuf Duration's JSON text ("3600s", "0.5s") in seconds; None when unset."""
    try:
        return float(Decimal(duration[:-1])) if duration.endswith("s") else None
    except InvalidOperation:
        return None


def run_task(runner: "LocalRunner", task: TaskRun) -> None:
    """Runs `task` to its end and records its state; its temporary folder goes with it."""
    task_dir = runner.work_dir / task.name
    tmp = task_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if task.kind == "custom_job" and runner.custom_job_task is not None:
            runner.custom_job_task(runner, task, task_dir, str(tmp))
        elif task.kind == "custom_job":
            _run_custom_job(runner, task, task_dir, str(tmp))
        else:
            _run_container(runner, task, task_dir, str(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_custom_job(runner: "LocalRunner", task: TaskRun, task_dir: Path, tmp: str) -> None:
    planned = runner.plan.planned[task.name]
    inputs = runner.plan.inputs(task.name)
    # The trial's folder, also when its job never starts: callers find the trial by it.
    base = inputs.get("base_output_directory") or ""
    task.output_dir = runner.paths.local(base) if base else str(task_dir)
    given = executor_input(inputs, _outputs(planned.component, task_dir))
    argv = [fill(a, given) for a in list(planned.container.get("command", [])) + list(planned.container.get("args", []))]
    launcher_args = argv[argv.index(CUSTOM_JOB_LAUNCHER) + 1 :]
    job_id = runner.next_job_id()
    try:
        checked = runner.custom_jobs().check(launcher_args, runner.system_labels(), job_id)
    except CustomJobRejected as e:
        runner.set_state(task, "FAILED", error=f"gcpc's CustomJob launcher refused this task's payload, as it would on Vertex: {e}")
        return
    job = checked["job"]
    job_spec = job.get("job_spec", {})
    counts = replica_counts(job_spec)
    if not counts or not counts[0]:
        raise UnsupportedPipeline(f"task {task.name!r} has no chief worker pool")
    base = job_spec.get("base_output_directory", {}).get("output_uri_prefix", "")
    output_dir = task.output_dir = runner.paths.local(base) if base else str(task_dir)
    os.makedirs(output_dir, exist_ok=True)
    ports = cluster_ports(counts)
    env = {**runner.task_env(tmp), **job_environment(job, job_id)}
    short = task.display_name.split(" ")[0]
    launches = []
    for replica in replicas(job_spec):
        pool_env, command, cwd = _pool_command(runner, task, replica.pool, replica.spec, env)
        first = (replica.pool, replica.index) == (0, 0)
        where = "" if first else f" workerpool{replica.pool}-{replica.index}"
        launches.append(
            Launch(
                command=command,
                env={**env, **pool_env, **replica_environment(job_spec, counts, replica, ports)},
                log_path=os.path.join(output_dir, LOG_FILE if first else f"trial-workerpool{replica.pool}-{replica.index}.log"),
                prefix=f"[{short}{where}]",
                cwd=cwd,
            )
        )
    task.log_paths = [launch.log_path for launch in launches]
    timeout_text = job_spec.get("scheduling", {}).get("timeout", "")
    outcome = runner.supervisor.run(launches, timeout=_seconds(timeout_text))
    if outcome.timed_out and not runner.stopping:
        # Vertex stops a CustomJob at job_spec.scheduling.timeout and fails it.
        log = outcome.logs[0]
        error = f"the CustomJob ran past its timeout of {timeout_text} (scheduling.timeout) and was stopped; last lines of {log}:\n{tail(log)}"
        runner.set_state(task, "FAILED", exit_code=outcome.codes[0], error=error)
        return
    finish(runner, task, outcome)


def _pool_command(runner: Any, task: Any, index: int, pool: Mapping[str, Any], env: Mapping[str, str]) -> Tuple[Dict[str, str], List[str], Optional[str]]:
    """A pool's environment, command and working directory (None: the run's), with cloud
    paths made local. A Python package pool runs as a prebuilt image runs it: in a fresh
    environment holding only its packages and their dependencies, from an empty folder."""
    cwd = None
    if "python_package_spec" in pool:
        from .package_env import environment

        spec = pool["python_package_spec"]
        wheels = [Path(runner.paths.local(uri)) for uri in spec.get("package_uris", [])]
        made = environment(runner.python, wheels)
        command: List[str] = [made.python, "-m", spec["python_module"], *spec.get("args", [])]
        # Nothing of this machine's import path: only the /gcs/ routing (sitecustomize).
        pool_env = {"PYTHONPATH": str(runner.site_dir), "PATH": f"{made.bin_dir}{os.pathsep}{env.get('PATH', '')}"}
        cwd = tempfile.mkdtemp(prefix="workdir-", dir=env.get("TMPDIR"))
    elif "container_spec" in pool:
        spec = pool["container_spec"]
        command = python_command(list(spec.get("command", [])) + list(spec.get("args", [])), runner.python)
        if not spec.get("command"):
            raise UnsupportedPipeline(f"task {task.name!r} pool {index} runs its image's entrypoint, which cannot run here")
        pool_env = {}
    else:
        raise UnsupportedPipeline(f"task {task.name!r} pool {index}: only container and Python package pools run locally")
    pool_env.update({e["name"]: runner.paths.in_text(str(e.get("value", ""))) for e in spec.get("env", [])})
    return pool_env, [runner.paths.in_text(c) for c in command], cwd


def _run_container(runner: "LocalRunner", task: TaskRun, task_dir: Path, tmp: str) -> None:
    planned = runner.plan.planned[task.name]
    task.output_dir = str(task_dir)
    values = runner.paths.in_value(runner.plan.inputs(task.name))
    given = executor_input(values, _outputs(planned.component, task_dir))
    parts = list(planned.container.get("command", [])) + list(planned.container.get("args", []))
    command = python_command([runner.paths.in_text(fill(c, given)) for c in parts], runner.python)
    log = str(task_dir / "task.log")
    task.log_paths = [log]
    # Not streamed: the KFP executor logs its whole input, every trial included.
    outcome = runner.supervisor.run([Launch(command, runner.task_env(tmp), log)])
    output_file = given["outputs"]["outputFile"]
    if os.path.exists(output_file):
        task.outputs = json.loads(Path(output_file).read_text(encoding="utf-8"))
    finish(runner, task, outcome)


def finish(runner: "LocalRunner", task: TaskRun, outcome: Outcome) -> None:
    if runner.stopping and any(c != 0 for c in outcome.codes) or not outcome.codes:
        runner.set_state(task, "CANCELLED", exit_code=None, error="the run was interrupted")
        return
    failed = [(c, log) for c, log in zip(outcome.codes, outcome.logs) if c != 0]
    if not failed:
        runner.set_state(task, "SUCCEEDED", exit_code=0)
        return
    code, log = failed[0]
    runner.set_state(task, "FAILED", exit_code=code, error=f"{exit_reason(code)}; last lines of {log}:\n{tail(log)}")
