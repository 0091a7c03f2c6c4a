"""Each trial's composed config, as the basic launcher composes it, and its trial settings.

Trial settings live in the job's own config, so `trial.machine_type: ${model.machine_type}`
gives each trial its machine; composing costs milliseconds per trial, so it happens only
when it can matter.
"""

from typing import Any, List, NamedTuple, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings, trial_settings

from ._choices import FIELD
from ._context import LaunchContext

DEFAULT_SUBDIR = "${hydra.job.num}"


class JobPlan(NamedTuple):
    settings: TrialSettings
    subdir: str  # hydra.sweep.subdir of the job
    config: Optional[DictConfig]  # the composed job config, when it was composed


def read_settings(node: DictConfig, field: str, where: str = "") -> TrialSettings:
    """Trial settings from a config node, interpolations resolved."""
    try:
        data = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except Exception as e:
        raise ConfigError(field, "<unresolvable>", "settings whose interpolations resolve", str(e), where) from e
    assert isinstance(data, dict)
    return trial_settings({str(k): v for k, v in data.items()})


def _has_interpolation(node: Any) -> bool:
    return "${" in repr(OmegaConf.to_container(node, resolve=False))


def compose_job(context: LaunchContext, overrides: Sequence[str], num: int) -> DictConfig:
    """Job `num`'s config exactly as `BasicLauncher.launch` composes it."""
    job_config = context.hydra_context.config_loader.load_sweep_config(context.config, list(overrides))
    with open_dict(job_config):
        job_config.hydra.job.id = num
        job_config.hydra.job.num = num
    return job_config


def plan_jobs(
    context: LaunchContext, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, compose: bool
) -> List[JobPlan]:
    """Each job's settings, sweep subdir and (when needed) composed config."""
    config = context.config
    field = f"{FIELD}.trial"
    compose = compose or _has_interpolation(config.hydra.launcher.trial)
    sweep = OmegaConf.to_container(config.hydra.sweep, resolve=False)
    assert isinstance(sweep, dict)
    compose = compose or sweep.get("subdir") != DEFAULT_SUBDIR
    if not compose:
        settings = read_settings(config.hydra.launcher.trial, field)
        return [JobPlan(settings, str(initial_job_idx + i), None) for i in range(len(job_overrides))]
    out = []
    try:
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            job_config = compose_job(context, overrides, num)
            HydraConfig.instance().set_config(job_config)
            settings = read_settings(job_config.hydra.launcher.trial, field, f"trial {num}: {' '.join(overrides)}")
            out.append(JobPlan(settings, str(job_config.hydra.sweep.subdir), job_config))
    finally:
        HydraConfig.instance().set_config(config)
    return out
