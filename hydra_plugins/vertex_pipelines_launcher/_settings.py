"""The sweep-wide settings (`hydra.launcher`, all but `trial`), checked once and named.

Every choice becomes its enum here, every submit setting is read here: the steps after
planning use these values and never read the launcher's config again.
"""

import json
import math
import re
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Optional, Sequence, Tuple, Type, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_vertex_pipelines.components.failures import FailureKind, Rule, rule_from_json, rules_from_json
from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.cloud.vertex import (
    DEFAULT_POLL_INTERVAL,
    EMULATOR_POLL_INTERVAL,
    VertexTarget,
    check_target,
    credentials_problem,
    default_project,
)
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.recovery.attempts import RecoverySettings
from hydra_vertex_pipelines.pipeline_builder.spec import names, vertex_enums
from hydra_vertex_pipelines.pipeline_builder.spec.validation import (
    LAUNCHER_SETTINGS,
    check_gcs_uri,
    check_kms_key,
    check_launcher_settings,
    check_one_of,
)

from ._choices import FIELD, Direction, FailurePolicy, FanOut, Mode, choices
from ._context import LaunchContext
from ._resume import resumed_run

LOCAL_PIPELINE_ROOT = "gs://local-pipeline-root"
AUTO_TASKS_LIMIT = 50  # above this many trials, `auto` loops (benchmarks/README.md says why)

Choice = TypeVar("Choice", bound=Enum)


def choose(value: Any, field: str, kind: Type[Choice]) -> Choice:
    """The member of `kind` a setting names; a ConfigError lists the accepted values."""
    return kind(check_one_of(value, field, choices(kind)))


def check_recovery(value: Any, field: str, mode: Mode) -> RecoverySettings:
    """The `recovery` settings, checked: an attempt count >= 1 (above 1 only in submit mode:
    the launcher recovers a run it follows, and with wait=false the manifest records the
    settings for `hydra-vertex-pipelines recover`), kinds of failure other than `app`, a
    backoff >= 0."""
    max_attempts = value.max_attempts
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ConfigError(f"{field}.max_attempts", max_attempts, "an integer >= 1 (1: no recovery)")
    if max_attempts > 1 and mode is not Mode.SUBMIT:
        raise ConfigError(
            f"{field}.max_attempts",
            max_attempts,
            "1 unless mode=submit: the launcher (wait=true) or `hydra-vertex-pipelines recover` (wait=false) "
            "recovers a submitted run",
        )
    accepted = [k.value for k in FailureKind if k is not FailureKind.APP]
    kinds = list(value.kinds) if isinstance(value.kinds, (ListConfig, list, tuple)) else None
    if kinds is None:
        raise ConfigError(f"{field}.kinds", value.kinds, f"a list of failure kinds among {', '.join(accepted)}")
    for kind in kinds:
        if kind not in accepted:
            why = "app is never recovered: the app's own error would fail again" if kind == FailureKind.APP.value else ""
            raise ConfigError(f"{field}.kinds", kind, f"failure kinds among {', '.join(accepted)}", why)
    backoff = value.quota_backoff
    if not isinstance(backoff, (int, float)) or isinstance(backoff, bool) or not math.isfinite(backoff) or backoff < 0:
        raise ConfigError(f"{field}.quota_backoff", backoff, "a number of seconds >= 0")
    return RecoverySettings(max_attempts, frozenset(FailureKind(k) for k in kinds), float(backoff))


@dataclass(frozen=True)
class SubmitSettings:
    """Where the PipelineJob goes, how it runs, and how the launcher follows it."""

    target: VertexTarget
    display_name: str
    enable_caching: Optional[bool]
    failure_policy: FailurePolicy
    service_account: Optional[str]
    network: Optional[str]
    reserved_ip_ranges: Tuple[str, ...]
    experiment: Optional[str]
    encryption_spec_key_name: Optional[str]
    wait: bool
    poll_interval: float  # seconds between two polls of a followed run
    reconnect_timeout: float  # seconds to keep trying while Vertex is out of reach
    live_report: bool = True  # report.html kept up to date while following
    recovery: RecoverySettings = RecoverySettings()


@dataclass(frozen=True)
class LaunchSettings:
    """The sweep-wide settings, checked: what the run is called and where it goes."""

    mode: Mode
    pipeline_root: str
    name: str
    run_id: str
    run_root: str  # gs:// folder of this run
    job_id: str  # the PipelineJob's id: the run id, or a new one when resuming
    direction: Direction
    fan_out: FanOut  # TASKS or PARALLEL_FOR: AUTO is decided here
    max_parallel: Optional[int]
    fresh_interpreters: bool
    objective_key: str
    location: str
    collector_image: Optional[str]
    labels: Dict[str, str]  # the PipelineJob's and every CustomJob's
    derived_labels: Dict[str, str]  # the app and the run, on the same resources
    submit: Optional[SubmitSettings]  # submit mode only
    failure_rules: Tuple[Rule, ...]  # the user's rules, then the built-in ones
    cost_rates: str = ""  # the checked hourly rates as JSON, "" for none
    compiled_for: Optional[SubmitSettings] = None  # compile mode: what `hydra-vertex-pipelines submit` starts from


def check_cost_rates(rates: Any, field: str) -> str:
    """`cost.rates` as the collector takes it (JSON), or "" when no rate is given; every
    rate a finite number >= 0 (or null: no rate), every name a machine or accelerator type."""
    data = OmegaConf.to_container(rates, resolve=True) if isinstance(rates, DictConfig) else dict(rates or {})
    assert isinstance(data, dict)
    if not (data.get("machine_types") or data.get("accelerator_types")):
        return ""
    for table, what in (("machine_types", "machine type"), ("accelerator_types", "accelerator type")):
        for name, rate in (data.get(table) or {}).items():
            _check_rate_name(str(name), what, f"{field}.{table}")
            where = f"{field}.{table}.{name}"
            if not isinstance(rate, dict) or not set(rate) <= {"spot", "standard"}:
                raise ConfigError(where, rate, f"hourly rates of one {what}: {{spot: RATE, standard: RATE}}")
            for tier, value in rate.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if value is not None and (not number or not math.isfinite(value) or value < 0):
                    raise ConfigError(f"{where}.{tier}", value, f"an hourly rate of one {what}: a number >= 0, or null for none")
    if not isinstance(data.get("currency"), str):
        raise ConfigError(f"{field}.currency", data.get("currency"), "a currency code such as USD")
    return json.dumps(data, sort_keys=True)


def _check_rate_name(name: str, what: str, field: str) -> None:
    if what == "machine type" and not re.match(r"^[a-z][a-z0-9-]*$", name):
        raise ConfigError(field, name, "Compute Engine machine type names such as n1-standard-4")
    if what == "accelerator type" and not vertex_enums.is_accelerator_type(name):
        accepted = ", ".join(sorted(vertex_enums.ACCELERATOR_TYPES))
        raise ConfigError(field, name, f"accelerator type names: {accepted}")


def _pipeline_root(lconf: DictConfig, mode: Mode) -> str:
    if lconf.pipeline_root is not None:
        return check_gcs_uri(lconf.pipeline_root, f"{FIELD}.pipeline_root")
    if mode is Mode.LOCAL:
        return LOCAL_PIPELINE_ROOT
    raise ConfigError(
        f"{FIELD}.pipeline_root",
        None,
        f"a gs:// URI for pipeline artifacts and trial outputs, required in {mode.value} mode",
        "e.g. hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
    )


def _fan_out(lconf: DictConfig, trials: int) -> FanOut:
    fan_out = choose(lconf.fan_out, f"{FIELD}.fan_out", FanOut)
    if fan_out is FanOut.TASKS and lconf.max_parallel is not None:
        raise ConfigError(
            f"{FIELD}.fan_out",
            FanOut.TASKS.value,
            f"parallel_for or auto when {FIELD}.max_parallel is set: separate tasks cannot be "
            "limited on Vertex AI, and all of them would start at once",
        )
    if fan_out is FanOut.AUTO:
        return FanOut.PARALLEL_FOR if lconf.max_parallel is not None or trials > AUTO_TASKS_LIMIT else FanOut.TASKS
    return fan_out


def _check_job_settings(lconf: DictConfig) -> FailurePolicy:
    """The PipelineJob's and the following's settings (submit and compile modes)."""
    failure_policy = choose(lconf.failure_policy, f"{FIELD}.failure_policy", FailurePolicy)
    if lconf.poll_interval is not None and (not isinstance(lconf.poll_interval, (int, float)) or lconf.poll_interval <= 0):
        raise ConfigError(f"{FIELD}.poll_interval", lconf.poll_interval, "null or a number of seconds > 0")
    if not isinstance(lconf.reconnect_timeout, (int, float)) or lconf.reconnect_timeout < 0:
        raise ConfigError(f"{FIELD}.reconnect_timeout", lconf.reconnect_timeout, "a number of seconds >= 0")
    if not isinstance(lconf.get("live_report", True), bool):
        raise ConfigError(f"{FIELD}.live_report", lconf.live_report, "true or false")
    return failure_policy


def _check_submit(lconf: DictConfig) -> Tuple[FailurePolicy, VertexTarget]:
    """The settings only submit mode reads, checked before anything is written."""
    failure_policy = _check_job_settings(lconf)
    project = lconf.project or default_project()
    endpoint = str(lconf.api_endpoint) if lconf.api_endpoint else None
    # Without a project, say a missing credential in the same error, not on the next try.
    also = "" if project else credentials_problem(VertexTarget("", "", endpoint))
    target = check_target(project, lconf.location, FIELD, also)
    if endpoint:
        target = VertexTarget(target.project, target.location, endpoint)
    return failure_policy, target


def _submit_settings(lconf: DictConfig, failure_policy: FailurePolicy, target: VertexTarget, run_id: str) -> SubmitSettings:
    if lconf.poll_interval is not None:
        poll_interval = float(lconf.poll_interval)
    else:  # 1 s against an emulator on this machine (plain http)
        emulated = str(lconf.api_endpoint or "").startswith("http://")
        poll_interval = EMULATOR_POLL_INTERVAL if emulated else DEFAULT_POLL_INTERVAL
    return SubmitSettings(
        target=target,
        display_name=str(lconf.display_name or run_id),
        enable_caching=lconf.enable_caching,
        failure_policy=failure_policy,
        service_account=lconf.service_account,
        network=lconf.network,
        reserved_ip_ranges=tuple(lconf.reserved_ip_ranges or ()),
        experiment=lconf.experiment,
        encryption_spec_key_name=lconf.encryption_spec_key_name,
        wait=bool(lconf.wait),
        poll_interval=poll_interval,
        reconnect_timeout=float(lconf.reconnect_timeout),
        live_report=bool(lconf.get("live_report", True)),
        recovery=check_recovery(lconf.recovery, f"{FIELD}.recovery", Mode.SUBMIT),
    )


def _compile_settings(lconf: DictConfig, run_id: str) -> SubmitSettings:
    """Compile mode: the submit settings known now, which the manifest records for
    `hydra-vertex-pipelines submit` (its flags fill or override them): the project may be
    unset yet, and no credential is needed."""
    failure_policy = _check_job_settings(lconf)
    endpoint = str(lconf.api_endpoint) if lconf.api_endpoint else None
    target = VertexTarget(str(lconf.project or ""), str(lconf.location or ""), endpoint)
    return _submit_settings(lconf, failure_policy, target, run_id)


def _run_names(
    context: LaunchContext, mode: Mode, pipeline_root: str, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Tuple[str, str, str]:
    """The pipeline's name, the run id and the PipelineJob's id; a resume must match its sweep."""
    lconf = context.config.hydra.launcher
    if lconf.pipeline_name is not None:
        name = names.check_pipeline_name(str(lconf.pipeline_name), f"{FIELD}.pipeline_name")
    else:
        name = names.pipeline_name(context.app_name)
    # A random part: two launches into one sweep dir in the same second are two runs.
    run_id = names.run_id(name, f"{context.config.hydra.sweep.dir}|{initial_job_idx}|{secrets.token_hex(8)}")
    if lconf.resume is None:
        return name, run_id, run_id
    run_id, job_id = resumed_run(
        str(lconf.resume),
        mode=mode,
        caching=lconf.enable_caching is not False,
        pipeline_root=pipeline_root,
        pipeline_name=name,
        tag=SweepFiles.of_batch(context.sweep_dir, initial_job_idx).tag,
        job_overrides=job_overrides,
    )
    return name, run_id, job_id


def check_settings(context: LaunchContext, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> LaunchSettings:
    """Checks the sweep-wide settings, in the order their errors are reported, and names the run."""
    lconf = context.config.hydra.launcher
    mode = choose(lconf.mode, f"{FIELD}.mode", Mode)
    check_launcher_settings({key: lconf.get(key) for key in LAUNCHER_SETTINGS}, FIELD)
    pipeline_root = _pipeline_root(lconf, mode)
    direction = choose(lconf.objective.direction, f"{FIELD}.objective.direction", Direction)
    if lconf.encryption_spec_key_name is not None:
        check_kms_key(lconf.encryption_spec_key_name, str(lconf.location), f"{FIELD}.encryption_spec_key_name")
    submit = _check_submit(lconf) if mode is Mode.SUBMIT else None
    check_recovery(lconf.recovery, f"{FIELD}.recovery", mode)
    fan_out = _fan_out(lconf, len(job_overrides))
    name, run_id, job_id = _run_names(context, mode, pipeline_root, job_overrides, initial_job_idx)
    return LaunchSettings(
        mode=mode,
        pipeline_root=pipeline_root,
        name=name,
        run_id=run_id,
        run_root=SweepFiles.run_folder(pipeline_root, run_id),
        job_id=job_id,
        direction=direction,
        fan_out=fan_out,
        max_parallel=lconf.max_parallel,
        fresh_interpreters=bool(lconf.fresh_interpreters),
        objective_key="" if lconf.objective.key is None else str(lconf.objective.key),
        location=str(lconf.location),
        collector_image=lconf.collector_image,
        labels=names.check_labels(lconf.labels, f"{FIELD}.labels"),
        derived_labels={"hydra-app": names.label_value(context.app_name), "hydra-run": run_id},
        submit=None if submit is None else _submit_settings(lconf, *submit, run_id),
        failure_rules=_failure_rules(lconf.failure_rules),
        cost_rates=check_cost_rates(lconf.cost.rates, f"{FIELD}.cost.rates"),
        compiled_for=_compile_settings(lconf, run_id) if mode is Mode.COMPILE else None,
    )


def _failure_rules(value: Any) -> Tuple[Rule, ...]:
    """The `failure_rules` setting, checked, before the built-in rules."""
    items = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
    if not isinstance(items, list):
        raise ConfigError(f"{FIELD}.failure_rules", items, "a list of {kind, codes, pattern} rules")
    for i, item in enumerate(items):
        try:
            rule_from_json(item)
        except ValueError as e:
            raise ConfigError(f"{FIELD}.failure_rules[{i}]", item, str(e)) from None
    return rules_from_json(items)
