"""Structured config of `hydra/launcher=vertex_pipelines`.

Closed choices (mode, fan_out, failure_policy, objective.direction) are string settings
whose values `_choices` defines: they are checked while the batch is planned, where each
becomes its enum once, so a wrong value is reported as every other setting is (the field,
the value, the accepted values).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings

from ._choices import Direction, FailurePolicy, FanOut, Mode


@dataclass
class ObjectiveConf:
    """What makes a trial the best one in the collector's report."""

    # Key of the trials' return value (a dict) to compare, e.g. val_loss or metrics.loss;
    # null: the return value itself, when it is a number.
    key: Optional[str] = None
    # minimize or maximize.
    direction: str = Direction.MINIMIZE.value


@dataclass
class CostRatesConf:
    """The user's own hourly rates, e.g. from the Vertex AI pricing page for their region:
    name -> {spot: RATE, standard: RATE}, per machine and per accelerator (checked when planned)."""

    machine_types: Dict[str, Any] = field(default_factory=dict)  # n1-standard-4: {spot: 0.04, standard: 0.19}
    accelerator_types: Dict[str, Any] = field(default_factory=dict)  # NVIDIA_TESLA_T4: {spot: 0.14, standard: 0.35}
    currency: str = "USD"


@dataclass
class CostConf:
    """With any rate given, summary.json and the report show an estimated cost beside the machine-hours."""

    rates: CostRatesConf = field(default_factory=CostRatesConf)


def _recoverable_kinds() -> List[str]:
    return ["preempted", "capacity", "quota", "internal", "unknown"]


@dataclass
class RecoveryConf:
    """Submit mode with wait=true: trials that failed for one of `kinds` run again as a new
    PipelineJob of the same sweep (README, "Recovery")."""

    # Attempts per trial, the first included; 1: no recovery.
    max_attempts: int = 1
    # Failure kinds worth another attempt: any kind but app (the app's own error would fail again).
    kinds: List[str] = field(default_factory=_recoverable_kinds)
    # Seconds to wait before a new attempt when a trial's failure was a quota error.
    quota_backoff: float = 60.0


@dataclass
class VertexPipelinesLauncherConf:
    """One sweep batch -> one Vertex AI PipelineJob: a CustomJob per trial and a collector.

    `trial` holds the per-trial CustomJob settings. It is read from each job's composed
    config, so `trial.machine_type: ${model.machine_type}` gives each trial its own machine.
    """

    _target_: str = "hydra_plugins.vertex_pipelines_launcher.launcher.VertexPipelinesLauncher"

    # submit: run on Vertex AI; compile: only write pipeline.yaml and the manifest;
    # local: run the same pipeline.yaml on this machine.
    mode: str = Mode.SUBMIT.value
    # Follow the submitted run and return the trials' values (submit mode).
    wait: bool = True
    # Seconds between two polls of a followed run (one request each, whatever the trials);
    # None: 15, or 1 against an emulator on this machine (a plain-http api_endpoint).
    poll_interval: Optional[float] = None
    # Seconds to keep trying while Vertex cannot be reached during a followed run, before
    # giving up with the commands to re-attach (the run itself goes on).
    reconnect_timeout: float = 1800.0
    # Keep report.html in the sweep dir up to date while following: one listing of the run's
    # folder per refresh and one read per finished trial's record (README, "The live report").
    live_report: bool = True
    # Rules that say why a trial failed, checked before the built-in ones (README, "Why a
    # trial failed"): each {kind, codes, pattern}, e.g. {kind: capacity, pattern: "ZONE_RESOURCE_POOL_EXHAUSTED"}.
    failure_rules: List[Dict[str, Any]] = field(default_factory=list)
    # Google Cloud project of the PipelineJob; None: the ADC project.
    project: Optional[str] = None
    location: str = "us-central1"
    # gs:// folder for pipeline artifacts and trial outputs (the staging bucket).
    pipeline_root: Optional[str] = None
    # Pipeline name; None: the app's name made valid for Vertex.
    pipeline_name: Optional[str] = None
    # PipelineJob display name; None: the run id.
    display_name: Optional[str] = None
    # Vertex AI Experiment the PipelineJob is associated with.
    experiment: Optional[str] = None
    # Service account the pipeline runs as.
    service_account: Optional[str] = None
    # VPC network of the PipelineJob.
    network: Optional[str] = None
    reserved_ip_ranges: List[str] = field(default_factory=list)
    # slow: a failed trial lets the others finish; fast: it stops scheduling new tasks.
    failure_policy: str = FailurePolicy.SLOW.value
    # Labels of the PipelineJob and of every CustomJob.
    labels: Dict[str, str] = field(default_factory=dict)
    # Vertex's step caching. null: trials may be cached (each run's trials write to their
    # own folders, so only a resumed run meets its earlier successes), the collector never;
    # true/false: every task, the collector included.
    enable_caching: Optional[bool] = None
    # Sweep dir (or manifest) of an earlier submitted run of this sweep: its trials keep
    # their folders, so Vertex's cache skips those that succeeded and only the rest run.
    resume: Optional[str] = None
    # Cloud KMS key (CMEK) for the PipelineJob's own resources.
    encryption_spec_key_name: Optional[str] = None
    # How trials become pipeline tasks. tasks: one named task per trial (easiest to read in
    # the Vertex UI); parallel_for: one task looping over the trials, with a real limit on
    # how many run at once; auto: tasks for up to 50 trials without max_parallel, else
    # parallel_for.
    fan_out: str = FanOut.AUTO.value
    # Most trials running at once. None: unlimited for `tasks`, 50 for `parallel_for`
    # (below Vertex's default quota of 60 job submissions per minute per region); in local
    # mode also at most the CPU count.
    max_parallel: Optional[int] = None
    # Local mode: start each Python trial in a fresh interpreter rather than forking it from
    # one that has imported Hydra already (slower; for apps that misbehave when forked).
    fresh_interpreters: bool = False
    # Image of the collector task; None: trial.image_uri (it already has this package).
    collector_image: Optional[str] = None
    # API endpoint override: a regional endpoint, or http://127.0.0.1:PORT for the local
    # emulator (plain http: no credentials are sent).
    api_endpoint: Optional[str] = None
    # The trials' objective: the report marks the best trial and plots this value.
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    # An estimated cost from your hourly rates, beside the machine-hours.
    cost: CostConf = field(default_factory=CostConf)
    # Runs again the trials that failed for a cloud's reason (preemption, stockout, quota...).
    recovery: RecoveryConf = field(default_factory=RecoveryConf)
    trial: TrialSettings = field(default_factory=TrialSettings)


ConfigStore.instance().store(
    group="hydra/launcher",
    name="vertex_pipelines",
    node=VertexPipelinesLauncherConf,
    provider="vertex_pipelines_launcher",
)
