"""Per-trial CustomJob settings as plain data.

The same dataclass is the Hydra structured config of ``hydra.launcher.trial`` and the
input of the pipeline builder, so a setting has exactly one definition.
"""

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Tuple

# Vertex's Reduction Server image (the pool that speeds up all-reduce across GPU workers).
REDUCTION_SERVER_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/training/reductionserver:latest"
REDUCTION_SERVER_MACHINE = "n1-highcpu-16"


class Code(Enum):
    """Where a trial's code comes from (`code`). The setting itself stays a string, checked
    with the others, so a wrong value is reported like any other setting."""

    IMAGE = "image"  # the app, inside image_uri
    PACKAGE = "package"  # a wheel of the project, on package.executor_image_uri


class Entry(Enum):
    """How a trial starts (`entry`); a string setting, like `code`."""

    AUTO = "auto"  # COMMAND when the started script's command line reaches the task function
    COMMAND = "command"  # re-run the app's command line
    PICKLE = "pickle"  # run the cloudpickled task function


@dataclass
class WorkerPoolSettings:
    """A worker pool after the chief (workers, parameter servers or the reduction server).

    Unset fields take the chief's values, so `workers.replica_count: 2` alone gives two
    more replicas like the chief. The reduction server takes Vertex's image and machine
    instead, and runs no app command.
    """

    replica_count: int = 0
    # None: the chief's machine type and accelerators.
    machine_type: Optional[str] = None
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    boot_disk_type: Optional[str] = None
    boot_disk_size_gb: Optional[int] = None
    # None: the chief's image.
    image_uri: Optional[str] = None
    # None: the chief's command and arguments (the same app, told its role by CLUSTER_SPEC).
    command: Optional[List[str]] = None
    # With `command`: its arguments.
    args: List[str] = field(default_factory=list)
    # On top of the chief's environment.
    env: Dict[str, str] = field(default_factory=dict)


@dataclass
class PackageSettings:
    """`code: package`: the trial runs from a wheel of the project on a prebuilt image."""

    # Project folder holding pyproject.toml or setup.py; None: the working directory.
    source_dir: Optional[str] = None
    # A Vertex prebuilt training image, e.g.
    # us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest.
    executor_image_uri: Optional[str] = None
    # Module the trial runs (`python -m MODULE overrides...`); None: the app's own module,
    # from `python -m pkg.app` or from the script's path inside source_dir.
    python_module: Optional[str] = None


@dataclass
class TrialSettings:
    """What one trial's Vertex CustomJob runs on, and how.

    Every field maps to a CustomJob field; the README's configuration table says which.
    """

    # Container image holding the app and this package (CustomJob container_spec.image_uri).
    image_uri: Optional[str] = None
    # image: run the app from image_uri; package: build a wheel of the project, upload it
    # once per content, and run it on package.executor_image_uri (no image build).
    code: str = Code.IMAGE.value
    package: PackageSettings = field(default_factory=PackageSettings)
    # How a trial starts: `command` re-runs the app's command line; `pickle` runs the
    # cloudpickled task function (for functions no command reaches: notebooks, tests);
    # `auto` picks `command` when the task function is the started script's, else `pickle`.
    entry: str = Entry.AUTO.value
    # Program that starts a trial; the trial's overrides follow it as separate arguments.
    # None: re-run the app the way the sweep was started (`python train.py`, `python -m pkg.app`).
    command: Optional[List[str]] = None
    # Interpreter inside the image for the default command.
    python: str = "python"
    # Environment variables of the trial container (written in clear text into pipeline.yaml).
    env: Dict[str, str] = field(default_factory=dict)
    machine_type: str = "n1-standard-4"
    # An aiplatform AcceleratorType name, e.g. NVIDIA_TESLA_T4; None for CPU only.
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    # Replicas running the app: the chief plus replica_count - 1 identical workers (a
    # shortcut for workers.replica_count).
    replica_count: int = 1
    # Worker pools 1 and 2 of the CustomJob (parameter servers and the reduction server
    # both take pool 2).
    workers: WorkerPoolSettings = field(default_factory=WorkerPoolSettings)
    parameter_servers: WorkerPoolSettings = field(default_factory=WorkerPoolSettings)
    reduction_server: WorkerPoolSettings = field(default_factory=WorkerPoolSettings)
    # pd-ssd, pd-standard or hyperdisk-balanced; None: Vertex's default for the machine
    # (pd-ssd, or hyperdisk-balanced on machines that only take that).
    boot_disk_type: Optional[str] = None
    # None: Vertex's 100 GB.
    boot_disk_size_gb: Optional[int] = None
    # Longest a trial may run, e.g. "3600s", "90m", "12h", "7d"; None: Vertex's 7 days.
    timeout: Optional[str] = None
    restart_job_on_worker_restart: bool = False
    # STANDARD, SPOT or FLEX_START (aiplatform Scheduling.Strategy).
    strategy: str = "STANDARD"
    # How long a FLEX_START trial may wait for capacity; None: Vertex's 24 hours.
    max_wait_duration: Optional[str] = None
    # Turn off Vertex's own restart of a job that failed on an internal error.
    disable_retries: bool = False
    # Pipeline-level retries of a failed trial task (a preempted Spot trial, say), waiting
    # retry_backoff, growing by retry_backoff_factor up to retry_backoff_max in between.
    retries: int = 0
    retry_backoff: str = "60s"
    retry_backoff_factor: float = 2.0
    retry_backoff_max: str = "3600s"
    # Run on this Vertex persistent resource (a reserved cluster) instead of on demand.
    persistent_resource_id: Optional[str] = None
    # Service account the trial runs as; None: Vertex's Custom Code Service Agent.
    service_account: Optional[str] = None
    # VPC network to peer with: projects/{project_number}/global/networks/{network}.
    network: Optional[str] = None
    reserved_ip_ranges: List[str] = field(default_factory=list)
    # Private Service Connect interface: {network_attachment: ..., dns_peering_configs: [...]}.
    psc_interface_config: Dict[str, Any] = field(default_factory=dict)
    # Vertex TensorBoard resource the trial's logs are uploaded to.
    tensorboard: Optional[str] = None
    enable_web_access: bool = False
    # Cloud KMS key for the CustomJob's resources (CMEK).
    encryption_spec_key_name: Optional[str] = None
    # Labels of each CustomJob, on top of the launcher's labels and the derived ones.
    labels: Dict[str, str] = field(default_factory=dict)
    # Prefix of each CustomJob's display name; None: the app's name.
    display_name: Optional[str] = None
    # gs:// folder holding one sub-folder per trial; None: <pipeline_root>/<run id>.
    base_output_dir: Optional[str] = None
    # Partial settings (FALLBACK_KEYS) an attempt that follows a preemption or a stockout
    # runs on, each on top of the ones before it, e.g. [{strategy: STANDARD}] (README, "Recovery").
    fallbacks: List[Dict[str, Any]] = field(default_factory=list)


# What a fallback may change: where and on what the trial runs, never what it runs (its
# image, command, environment) nor how many replicas it has (the app's world size).
FALLBACK_POOL_KEYS = ("machine_type", "accelerator_type", "accelerator_count", "boot_disk_type", "boot_disk_size_gb")
FALLBACK_KEYS = (
    *FALLBACK_POOL_KEYS,
    "strategy",
    "max_wait_duration",
    "timeout",
    "persistent_resource_id",
    "workers",
    "parameter_servers",
)
_FALLBACK_POOLS = ("workers", "parameter_servers")


def fallback_variants(settings: TrialSettings) -> List[Tuple[Dict[str, Any], TrialSettings]]:
    """Each fallback's settings: fallback i on top of the trial's own and fallbacks 0..i-1,
    as (what changed from the trial's own, the whole settings). Unknown keys are refused by
    `validation.check_fallbacks` first; here they raise KeyError."""
    variants: List[Tuple[Dict[str, Any], TrialSettings]] = []
    changed: Dict[str, Any] = {}
    for partial in settings.fallbacks:
        changed = merge_fallback(changed, partial)
        variants.append((changed, apply_fallback(settings, changed)))
    return variants


def merge_fallback(base: Mapping[str, Any], partial: Mapping[str, Any]) -> Dict[str, Any]:
    """`partial` on top of `base`, pools merged key by key."""
    merged = {**base, **partial}
    for pool in _FALLBACK_POOLS:
        if isinstance(base.get(pool), Mapping) and isinstance(partial.get(pool), Mapping):
            merged[pool] = {**base[pool], **partial[pool]}
    return merged


def apply_fallback(settings: TrialSettings, changed: Mapping[str, Any]) -> TrialSettings:
    """The trial's settings with `changed` applied (and no fallbacks of their own)."""
    unknown = sorted(set(changed) - set(FALLBACK_KEYS))
    if unknown:
        raise KeyError(f"not fallback settings: {unknown}")
    values: Dict[str, Any] = {k: v for k, v in changed.items() if k not in _FALLBACK_POOLS}
    for pool in _FALLBACK_POOLS:
        if pool in changed:
            values[pool] = dataclasses.replace(getattr(settings, pool), **dict(changed[pool]))
    return dataclasses.replace(settings, **values, fallbacks=[])


_NESTED = {
    "workers": WorkerPoolSettings,
    "parameter_servers": WorkerPoolSettings,
    "reduction_server": WorkerPoolSettings,
    "package": PackageSettings,
}


def trial_settings(data: Dict[str, Any]) -> TrialSettings:
    """TrialSettings from plain data (a resolved Hydra node), nested settings included."""
    values = dict(data)
    for key, kind in _NESTED.items():
        if isinstance(values.get(key), dict):
            values[key] = kind(**values[key])
    return TrialSettings(**values)
