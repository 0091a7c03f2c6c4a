"""Per-trial CustomJob settings as plain data.

The same dataclass is the Hydra structured config of ``hydra.launcher.trial`` and the
input of the pipeline builder, so a setting has exactly one definition.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class TrialSettings:
    """What one trial's Vertex CustomJob runs on, and how.

    Every field maps to a CustomJob field; the README's configuration table says which.
    """

    # Container image holding the app and this package (CustomJob container_spec.image_uri).
    image_uri: Optional[str] = None
    # How a trial starts: `command` re-runs the app's command line; `pickle` runs the
    # cloudpickled task function (for functions no command reaches: notebooks, tests);
    # `auto` picks `command` when the task function is the started script's, else `pickle`.
    entry: str = "auto"
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
    replica_count: int = 1
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
    # Service account the trial runs as; None: Vertex's Custom Code Service Agent.
    service_account: Optional[str] = None
    # VPC network to peer with: projects/{project_number}/global/networks/{network}.
    network: Optional[str] = None
    reserved_ip_ranges: List[str] = field(default_factory=list)
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
