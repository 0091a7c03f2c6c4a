"""Trial specs: each override combination as plain data, ready to become a CustomJob."""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .cloud_paths import gcs_to_fuse
from .names import display_name
from .settings import TrialSettings
from .validation import duration

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class TrialSpec:
    """One trial: what it runs, where it writes, and the CustomJob that runs it."""

    number: int
    job_id: str
    overrides: Tuple[str, ...]
    display_name: str
    output_uri: str  # gs:// folder: the CustomJob's base_output_directory
    output_dir: str  # its /gcs/ twin: the trial's Hydra run dir, where result.json lands
    worker_pool_specs: Tuple[Dict[str, Any], ...]
    labels: Dict[str, str] = field(default_factory=dict)
    job_settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def result_path(self) -> str:
        return f"{self.output_dir}/{RESULT_FILE}"

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
        data["result_path"] = self.result_path
        return data


def worker_pool_specs(
    settings: TrialSettings, command: Sequence[str], args: Sequence[str]
) -> Tuple[Dict[str, Any], ...]:
    """Vertex WorkerPoolSpecs in proto field names.

    Vertex wants exactly one replica in the first (chief) pool, so `replica_count=N`
    becomes the chief plus a pool of N-1 identical workers.
    """
    machine: Dict[str, Any] = {"machine_type": settings.machine_type}
    if settings.accelerator_type:
        machine["accelerator_type"] = settings.accelerator_type
        machine["accelerator_count"] = settings.accelerator_count
    container: Dict[str, Any] = {
        "image_uri": settings.image_uri or "",
        "command": list(command),
        "args": list(args),
    }
    if settings.env:
        container["env"] = [{"name": str(k), "value": str(v)} for k, v in settings.env.items()]
    chief: Dict[str, Any] = {"machine_spec": machine, "replica_count": 1, "container_spec": container}
    disk = {"boot_disk_type": settings.boot_disk_type, "boot_disk_size_gb": settings.boot_disk_size_gb}
    if any(v is not None for v in disk.values()):
        chief["disk_spec"] = {k: v for k, v in disk.items() if v is not None}
    if settings.replica_count == 1:
        return (chief,)
    return (chief, {**chief, "replica_count": settings.replica_count - 1})


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
    }
    out.update({k: v for k, v in optional.items() if v})
    if settings.reserved_ip_ranges:
        out["reserved_ip_ranges"] = list(settings.reserved_ip_ranges)
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
) -> TrialSpec:
    """A TrialSpec from checked settings; `args` already hold the overrides and run dir."""
    prefix = settings.display_name or name_prefix
    shown = " ".join(overrides) if overrides else "(no overrides)"
    return TrialSpec(
        number=number,
        job_id=job_id,
        overrides=tuple(overrides),
        display_name=display_name(f"{prefix}-{number} {shown}"),
        output_uri=output_uri,
        output_dir=gcs_to_fuse(output_uri),
        worker_pool_specs=worker_pool_specs(settings, command, args),
        labels=dict(labels or {}),
        job_settings=job_settings(settings),
    )


def trial_rows(trials: Sequence[TrialSpec]) -> List[Dict[str, Any]]:
    """The little the collector needs to know of each trial."""
    return [
        {"number": t.number, "overrides": list(t.overrides), "output_dir": t.output_dir}
        for t in trials
    ]
