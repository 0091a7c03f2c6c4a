"""Starts a CustomJob's replicas on this machine, as Vertex starts them on its VMs.

One process per replica of each worker pool, with the environment Vertex gives it
(vertex_env); the chief's log is the trial's log, the other replicas' lie beside it. A
pool runs its container command, or, for a Python package pool, its module in a fresh
environment holding only its packages (package_env), as a prebuilt image runs it. Local
mode's CustomJob tasks and the emulator's JobService both start their jobs here.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from hydra_vertex_pipelines.components.sweep_files import TrialFiles

from ..spec.cloud_paths import PathMap
from .interpreter import TaskInterpreter
from .plan import UnsupportedPipeline
from .processes import Launch, python_command
from .vertex_env import Replica, cluster_ports, job_environment, replica_counts, replica_environment, replicas


@dataclass(frozen=True)
class ReplicaLaunch:
    """The process of one replica."""

    replica: Replica
    launch: Launch


def parse_duration(text: str) -> Optional[float]:
    """A protobuf Duration's JSON text ("3600s", "0.5s") in seconds; None when unset (a
    text that does not end in "s"); ValueError when its number is malformed."""
    return float(text[:-1]) if text.endswith("s") else None


def job_output_dir(job_spec: Mapping[str, Any], paths: PathMap, fallback: str) -> str:
    """The local folder of the job's base_output_directory, or `fallback` if it has none."""
    base = job_spec.get("base_output_directory", {}).get("output_uri_prefix", "")
    return paths.local(base) if base else fallback


def launch_replicas(
    job: Mapping[str, Any],
    job_id: str,
    interpreter: TaskInterpreter,
    tmp: str,
    output_dir: str,
    owner: str,
    prefix: Optional[str] = None,
) -> List[ReplicaLaunch]:
    """A process per replica of `job` (a CustomJob as a dict), logging into `output_dir`.

    `tmp` is the job's TMPDIR; `owner` names the job in errors; with a `prefix`, each
    replica's log is streamed to the console behind `[prefix workerpoolP-I]` (the chief's
    behind `[prefix]`)."""
    job_spec = job.get("job_spec", {})
    counts = replica_counts(job_spec)
    ports = cluster_ports(counts)
    env = {**interpreter.environment(tmp), **job_environment(job, job_id)}
    launched = []
    os.makedirs(TrialFiles(output_dir).launcher_folder, exist_ok=True)  # where the replicas' logs go
    for replica in replicas(job_spec):
        pool_env, command, cwd = pool_command(replica.pool, replica.spec, env, interpreter, owner)
        shown = None if prefix is None else f"[{prefix}]" if replica.chief else f"[{prefix} {replica.name}]"
        launch = Launch(
            command=command,
            env={**env, **pool_env, **replica_environment(job_spec, counts, replica, ports)},
            log_path=TrialFiles(output_dir).replica_log(replica.pool, replica.index),
            prefix=shown,
            cwd=cwd,
        )
        launched.append(ReplicaLaunch(replica, launch))
    return launched


def pool_command(
    index: int, pool: Mapping[str, Any], env: Mapping[str, str], interpreter: TaskInterpreter, owner: str
) -> Tuple[Dict[str, str], List[str], Optional[str]]:
    """A pool's environment, command and working directory (None: the run's), with cloud
    paths made local. A Python package pool runs as a prebuilt image runs it: in a fresh
    environment holding only its packages and their dependencies, from an empty folder."""
    paths = interpreter.paths
    cwd = None
    if "python_package_spec" in pool:
        from .package_env import environment  # only package pools need it

        spec = pool["python_package_spec"]
        wheels = [Path(paths.local(uri)) for uri in spec.get("package_uris", [])]
        made = environment(interpreter.python, wheels)
        command: List[str] = [made.python, "-m", spec["python_module"], *spec.get("args", [])]
        # Nothing of this machine's import path: only the /gcs/ routing (sitecustomize).
        pool_env = {"PYTHONPATH": str(interpreter.site_dir), "PATH": f"{made.bin_dir}{os.pathsep}{env.get('PATH', '')}"}
        cwd = tempfile.mkdtemp(prefix="workdir-", dir=env.get("TMPDIR"))
    elif "container_spec" in pool:
        spec = pool["container_spec"]
        command = python_command(list(spec.get("command", [])) + list(spec.get("args", [])), interpreter.python)
        if not spec.get("command"):
            raise UnsupportedPipeline(f"task {owner!r} pool {index} runs its image's entrypoint, which cannot run here")
        pool_env = {}
    else:
        raise UnsupportedPipeline(f"task {owner!r} pool {index}: only container and Python package pools run locally")
    pool_env.update({e["name"]: paths.in_text(str(e.get("value", ""))) for e in spec.get("env", [])})
    return pool_env, [paths.in_text(c) for c in command], cwd
