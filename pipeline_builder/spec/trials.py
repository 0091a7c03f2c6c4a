"""Trial specs: each override combination as plain data, ready to become a CustomJob."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from hydra_vertex_pipelines.components.machine_hours import pool_machines
from hydra_vertex_pipelines.components.sweep_files import TrialFiles, gcs_to_fuse

from ..errors import ConfigError
from .names import display_name
from .settings import (
    REDUCTION_SERVER_IMAGE,
    REDUCTION_SERVER_MACHINE,
    TrialSettings,
    WorkerPoolSettings,
    fallback_variants,
)
from .validation import check_arguments
from .values import duration

# gcpc's payload template around the inputs, with the project, location and persistent
# resource id Vertex fills in: what the `--payload` argument holds besides the inputs.
PAYLOAD_TEMPLATE_BYTES = 2048


@dataclass(frozen=True)
class TrialSpec:
    """One trial: what it runs, where it writes, and the CustomJob that runs it."""

    number: int
    job_id: str
    overrides: Tuple[str, ...]
    display_name: str
    output_uri: str  # gs:// folder: the CustomJob's base_output_directory
    output_dir: str  # its /gcs/ twin: the trial's Hydra run dir, where .vertex/result.json lands
    worker_pool_specs: Tuple[Dict[str, Any], ...]
    labels: Dict[str, str] = field(default_factory=dict)
    job_settings: Dict[str, Any] = field(default_factory=dict)
    # kfp's set_retry arguments for the trial's task ({}: no pipeline-level retries).
    retry: Dict[str, Any] = field(default_factory=dict)
    # `trial.fallbacks`, precomputed: each {settings: what it changes from the trial's own
    # settings (fallbacks 0..i merged), worker_pool_specs, job_settings}, plain JSON data,
    # so an attempt on a fallback only swaps values (spec/fallbacks.py).
    fallbacks: Tuple[Dict[str, Any], ...] = ()
    # Which fallback worker_pool_specs and job_settings hold: None for the trial's own settings.
    fallback: Optional[int] = None

    @property
    def result_path(self) -> str:
        return TrialFiles(self.output_dir).result

    def custom_job_inputs(self) -> Dict[str, Any]:
        """Keyword arguments of CustomTrainingJobOp for this trial."""
        return {
            "display_name": self.display_name,
            "worker_pool_specs": [dict(p) for p in self.worker_pool_specs],
            "base_output_directory": self.output_uri,
            "labels": dict(self.labels),
            **self.job_settings,
        }

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        data["worker_pool_specs"] = [dict(p) for p in self.worker_pool_specs]
        data["fallbacks"] = [dict(f) for f in self.fallbacks]
        data["result_path"] = self.result_path
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrialSpec":
        """The trial `to_dict` gave: what `recover` re-submits from the manifest."""
        fields = {k: v for k, v in data.items() if k != "result_path"}
        fields["overrides"] = tuple(fields["overrides"])
        fields["worker_pool_specs"] = tuple(dict(p) for p in fields["worker_pool_specs"])
        fields["fallbacks"] = tuple(dict(f) for f in fields.get("fallbacks") or ())
        return cls(**fields)


def _machine(machine_type: str, accelerator_type: Optional[str], accelerator_count: int) -> Dict[str, Any]:
    machine: Dict[str, Any] = {"machine_type": machine_type}
    if accelerator_type:
        machine["accelerator_type"] = accelerator_type
        machine["accelerator_count"] = accelerator_count
    return machine


def _env(env: Dict[str, Any]) -> List[Dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in env.items()]


def _pool(
    chief: TrialSettings,
    pool: WorkerPoolSettings,
    command: Sequence[str],
    args: Sequence[str],
    reduction_server: bool = False,
) -> Dict[str, Any]:
    """One extra pool: its own settings where set, else the chief's (reduction server: Vertex's)."""
    if pool.machine_type is not None:
        machine = _machine(pool.machine_type, pool.accelerator_type, pool.accelerator_count)
    elif reduction_server:
        machine = _machine(REDUCTION_SERVER_MACHINE, None, 0)
    else:
        machine = _machine(chief.machine_type, chief.accelerator_type, chief.accelerator_count)
    container: Dict[str, Any] = {
        "image_uri": pool.image_uri or (REDUCTION_SERVER_IMAGE if reduction_server else chief.image_uri or "")
    }
    if pool.command is not None:
        container.update(command=list(pool.command), args=list(pool.args))
    elif not reduction_server:
        container.update(command=list(command), args=list(args))
    env = pool.env if reduction_server else {**chief.env, **pool.env}
    if env:
        container["env"] = _env(env)
    spec: Dict[str, Any] = {"machine_spec": machine, "replica_count": pool.replica_count, "container_spec": container}
    disk = _disk(pool.boot_disk_type, pool.boot_disk_size_gb) or (
        None if reduction_server else _disk(chief.boot_disk_type, chief.boot_disk_size_gb)
    )
    if disk:
        spec["disk_spec"] = disk
    return spec


def _disk(disk_type: Optional[str], size_gb: Optional[int]) -> Optional[Dict[str, Any]]:
    disk = {"boot_disk_type": disk_type, "boot_disk_size_gb": size_gb}
    return {k: v for k, v in disk.items() if v is not None} or None


def worker_pool_specs(
    settings: TrialSettings,
    command: Sequence[str],
    args: Sequence[str],
    package_uris: Sequence[str] = (),
) -> Tuple[Dict[str, Any], ...]:
    """Vertex WorkerPoolSpecs in proto field names: the chief, then workers (pool 1), then
    parameter servers or the reduction server (pool 2), which needs workers: an empty
    pool 1 does not survive gcpc's launcher (`recursive_remove_empty`).

    Vertex wants exactly one replica in the chief pool, so `replica_count=N` becomes the
    chief plus a pool of N-1 identical workers. With `package_uris`, every pool that runs
    the app runs `command`'s module from those packages instead of a container.
    """
    container: Dict[str, Any] = {"image_uri": settings.image_uri or "", "command": list(command), "args": list(args)}
    if settings.env:
        container["env"] = _env(settings.env)
    chief: Dict[str, Any] = {
        "machine_spec": _machine(settings.machine_type, settings.accelerator_type, settings.accelerator_count),
        "replica_count": 1,
        "container_spec": container,
    }
    disk = _disk(settings.boot_disk_type, settings.boot_disk_size_gb)
    if disk:
        chief["disk_spec"] = disk
    pools: List[Dict[str, Any]] = [chief]
    if settings.workers.replica_count:
        pools.append(_pool(settings, settings.workers, command, args))
    elif settings.replica_count > 1:
        pools.append({**chief, "replica_count": settings.replica_count - 1})
    second = None
    if settings.parameter_servers.replica_count:
        second = _pool(settings, settings.parameter_servers, command, args)
    elif settings.reduction_server.replica_count:
        second = _pool(settings, settings.reduction_server, command, args, reduction_server=True)
    if second is not None:
        if len(pools) == 1:  # gcpc's launcher would drop an empty pool 1 and shift this one
            raise ValueError("worker pool 2 needs workers in pool 1 (check_trial_settings refuses this layout)")
        pools.append(second)
    if package_uris:
        pools = [_as_package(p, package_uris) if _runs_app(p, command) else p for p in pools]
    return tuple(pools)


def _runs_app(pool: Dict[str, Any], command: Sequence[str]) -> bool:
    return bool(pool) and pool["container_spec"].get("command") == list(command)


def _as_package(pool: Dict[str, Any], package_uris: Sequence[str]) -> Dict[str, Any]:
    """A pool running the app's module from uploaded packages on a prebuilt image: the
    command is `python -m MODULE`, so its module and arguments carry over."""
    container = pool["container_spec"]
    at = container["command"].index("-m") + 1
    spec: Dict[str, Any] = {
        "executor_image_uri": container["image_uri"],
        "package_uris": list(package_uris),
        "python_module": container["command"][at],
        "args": container["command"][at + 1 :] + container["args"],
    }
    if "env" in container:
        spec["env"] = container["env"]
    return {k: v for k, v in pool.items() if k != "container_spec"} | {"python_package_spec": spec}


def job_settings(settings: TrialSettings) -> Dict[str, Any]:
    """CustomTrainingJobOp inputs other than the worker pools; unset ones keep Vertex's defaults."""
    out: Dict[str, Any] = {
        "restart_job_on_worker_restart": settings.restart_job_on_worker_restart,
        "strategy": settings.strategy,
        "enable_web_access": settings.enable_web_access,
    }
    if settings.timeout is not None:
        out["timeout"] = duration(settings.timeout, "timeout")
    if settings.max_wait_duration is not None:
        out["max_wait_duration"] = duration(settings.max_wait_duration, "max_wait_duration")
    optional = {
        "service_account": settings.service_account,
        "network": settings.network,
        "tensorboard": settings.tensorboard,
        "encryption_spec_key_name": settings.encryption_spec_key_name,
        "persistent_resource_id": settings.persistent_resource_id,
    }
    out.update({k: v for k, v in optional.items() if v})
    if settings.reserved_ip_ranges:
        out["reserved_ip_ranges"] = list(settings.reserved_ip_ranges)
    if settings.psc_interface_config:
        out["psc_interface_config"] = dict(settings.psc_interface_config)
    if settings.disable_retries:
        out["disable_retries"] = True
    return out


def build_trial(
    *,
    number: int,
    job_id: str,
    overrides: Sequence[str],
    settings: TrialSettings,
    command: Sequence[str],
    args: Sequence[str],
    output_uri: str,
    name_prefix: str,
    labels: Optional[Dict[str, str]] = None,
    package_uris: Sequence[str] = (),
) -> TrialSpec:
    """A TrialSpec from checked settings; `args` already hold the overrides and run dir.

    Refuses (ConfigError naming the trial) arguments no process could receive on Vertex.
    """
    prefix = settings.display_name or name_prefix
    shown = " ".join(overrides) if overrides else "(no overrides)"
    trial = TrialSpec(
        number=number,
        job_id=job_id,
        overrides=tuple(overrides),
        display_name=display_name(f"{prefix}-{number} {shown}"),
        output_uri=output_uri,
        output_dir=gcs_to_fuse(output_uri),
        worker_pool_specs=worker_pool_specs(settings, command, args, package_uris),
        labels=dict(labels or {}),
        job_settings=job_settings(settings),
        retry=retry_policy(settings),
        fallbacks=tuple(
            {
                "settings": changed,
                "worker_pool_specs": list(worker_pool_specs(merged, command, args, package_uris)),
                "job_settings": job_settings(merged),
            }
            for changed, merged in fallback_variants(settings)
        ),
    )
    payload = json.dumps(trial.custom_job_inputs(), ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        check_arguments(overrides, 0, "override")
        check_arguments(_process_strings(trial.worker_pool_specs), len(payload) + PAYLOAD_TEMPLATE_BYTES, "trial argument")
    except ConfigError as e:
        raise e.at(f"trial {number}: " + " ".join(o if len(o) <= 60 else o[:59] + "…" for o in overrides)) from None
    return trial


def _process_strings(pools: Sequence[Dict[str, Any]]) -> Iterator[str]:
    """Each string a pool's processes get as one argument or environment entry."""
    for pool in pools:
        spec = pool.get("container_spec") or pool.get("python_package_spec") or {}
        yield from spec.get("command", ())
        yield from spec.get("args", ())
        yield from (f"{e['name']}={e['value']}" for e in spec.get("env", ()))


def retry_policy(settings: TrialSettings) -> Dict[str, Any]:
    """kfp's PipelineTask.set_retry arguments, or {} for no retries."""
    if not settings.retries:
        return {}
    return {
        "num_retries": settings.retries,
        "backoff_duration": duration(settings.retry_backoff, "retry_backoff"),
        "backoff_factor": float(settings.retry_backoff_factor),
        "backoff_max_duration": duration(settings.retry_backoff_max, "retry_backoff_max"),
    }


def trial_rows(trials: Sequence[TrialSpec]) -> List[Dict[str, Any]]:
    """The little the collector needs to know of each trial: its folder, and the machines
    and scheduling strategy its machine-hours are counted from."""
    return [
        {
            "number": t.number,
            "overrides": list(t.overrides),
            "output_dir": t.output_dir,
            "machines": pool_machines(t.worker_pool_specs),
            "strategy": t.job_settings.get("strategy") or "STANDARD",
        }
        for t in trials
    ]
