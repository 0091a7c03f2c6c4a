"""Turns one Hydra sweep batch into trial specs, then into a pipeline run.

This is where the Hydra side meets `pipeline_builder`: it reads the composed configs,
builds each trial's command line, and hands plain data on.
"""

import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline_builder import names
from pipeline_builder.errors import ConfigError
from pipeline_builder.pipeline import SweepSpec
from pipeline_builder.settings import TrialSettings
from pipeline_builder.trials import TrialSpec, build_trial
from pipeline_builder.validation import check_gcs_uri, check_one_of, check_trial_settings

from .config import MODES

if TYPE_CHECKING:
    from .launcher import VertexPipelinesLauncher

log = logging.getLogger(__name__)

FIELD = "hydra.launcher"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
RESULT_CALLBACK = "hydra_plugins.vertex_pipelines_launcher.callbacks.TrialResultCallback"
DEFAULT_SUBDIR = "${hydra.job.num}"
# Hydra overrides of the sweep that must not reach a trial: the trial is one plain run.
# The launcher and sweeper *choices* (hydra/launcher=...) do reach it, so a config that
# sets hydra.launcher keys composes the same way; their settings do not matter there.
_NOT_PASSED_ON = (
    "hydra.launcher",
    "hydra.sweeper",
    "hydra.sweep",
    "hydra.run",
    "hydra.mode",
    "hydra.job.id",
    "hydra.job.num",
)
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+-]*$")


class LauncherConfigError(CompactHydraException):
    """A ConfigError, shown by Hydra as its message alone rather than a stack trace."""


class NoTrialValuesError(CompactHydraException):
    """The sweeper needs trial values, and this mode produces none."""


@dataclass(frozen=True)
class Batch:
    """A planned sweep batch: the pipeline to build and where its files go."""

    mode: str
    sweep: SweepSpec
    sweep_dir: Path


def hydra_value(value: str, field: str) -> str:
    """`value` written so Hydra's override parser reads it back unchanged."""
    if _PLAIN_VALUE.match(value):
        return value
    if re.search(r"[\\'$]", value):
        raise ConfigError(field, value, "a path without quotes, backslashes or '$'")
    return f"'{value}'"


def app_program(python: str, cwd: str) -> List[str]:
    """How to start the app again: `python -m module` or `python <script relative to cwd>`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [python, "-m", module]
    script = os.path.relpath(os.path.abspath(sys.argv[0]), cwd)
    return [python, script]


def hydra_app_flags(config: DictConfig) -> List[str]:
    """The command-line flags that chose the app's primary config."""
    flags = []
    if config.hydra.job.config_name:
        flags.append(f"--config-name={config.hydra.job.config_name}")
    for source in config.hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            flags.append(f"--config-dir={os.path.relpath(source.path, config.hydra.runtime.cwd)}")
    return flags


def passed_on_hydra_overrides(config: DictConfig) -> List[str]:
    """The sweep's own Hydra overrides that shape a trial's config (logging, chdir, ...)."""
    given = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)  # keep ${...} as typed
    parsed = OverridesParser.create().parse_overrides([str(o) for o in given])
    return [
        o.input_line
        for o in parsed
        if o.input_line and not o.key_or_group.startswith(_NOT_PASSED_ON)
    ]


def _has_interpolation(node: Any) -> bool:
    container = OmegaConf.to_container(node, resolve=False)
    return "${" in repr(container)


def _settings(node: DictConfig, field: str, where: str = "") -> TrialSettings:
    try:
        data = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except Exception as e:
        raise ConfigError(field, "<unresolvable>", "settings whose interpolations resolve", str(e), where) from e
    assert isinstance(data, dict)
    return TrialSettings(**data)


def _job_configs(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> List[Tuple[TrialSettings, str]]:
    """Each trial's settings and sweep subdir, composed per trial only when they can differ."""
    config = launcher.config
    assert config is not None
    base_field = f"{FIELD}.trial"
    per_job = _has_interpolation(config.hydra.launcher.trial) or (
        OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir") != DEFAULT_SUBDIR
    )
    if not per_job:
        settings = _settings(config.hydra.launcher.trial, base_field)
        return [(settings, str(initial_job_idx + i)) for i in range(len(job_overrides))]
    assert launcher.hydra_context is not None
    loader = launcher.hydra_context.config_loader
    out = []
    try:
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            job_config = loader.load_sweep_config(config, list(overrides))
            with open_dict(job_config):
                job_config.hydra.job.id = str(num)
                job_config.hydra.job.num = num
            HydraConfig.instance().set_config(job_config)
            where = f"trial {num}: {' '.join(overrides)}"
            settings = _settings(job_config.hydra.launcher.trial, base_field, where)
            out.append((settings, str(job_config.hydra.sweep.subdir)))
    finally:
        HydraConfig.instance().set_config(config)
    return out


def plan_batch(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> Batch:
    """Checks every setting and builds every trial spec; writes and sends nothing."""
    config = launcher.config
    assert config is not None
    lconf = config.hydra.launcher
    mode = check_one_of(lconf.mode, f"{FIELD}.mode", MODES)
    local = mode == "local"

    if lconf.pipeline_root is None and local:
        pipeline_root = "gs://local-pipeline-root"
    elif lconf.pipeline_root is None:
        raise ConfigError(
            f"{FIELD}.pipeline_root",
            None,
            f"a gs:// URI for pipeline artifacts and trial outputs, required in {mode} mode",
            "e.g. hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
        )
    else:
        pipeline_root = check_gcs_uri(lconf.pipeline_root, f"{FIELD}.pipeline_root")

    app_name = str(config.hydra.job.name)
    if lconf.pipeline_name is not None:
        name = names.check_pipeline_name(str(lconf.pipeline_name), f"{FIELD}.pipeline_name")
    else:
        name = names.pipeline_name(app_name)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    run_id = names.run_id(name, f"{sweep_dir.resolve()}|{initial_job_idx}")
    run_root = f"{pipeline_root}/{run_id}"
    base_labels = names.check_labels(lconf.labels, f"{FIELD}.labels")
    derived_labels = {"hydra-app": names.label_value(app_name), "hydra-run": run_id}

    cwd = str(config.hydra.runtime.cwd)
    hydra_args = passed_on_hydra_overrides(config)
    trials: List[TrialSpec] = []
    for i, (settings, subdir) in enumerate(_job_configs(launcher, job_overrides, initial_job_idx)):
        num = initial_job_idx + i
        overrides = list(job_overrides[i])
        field = f"{FIELD}.trial"
        try:
            check_trial_settings(settings, field, require_image=not local)
            labels = {
                **derived_labels,
                "hydra-trial": str(num),
                **base_labels,
                **names.check_labels(settings.labels, f"{field}.labels"),
            }
            names.check_labels(labels, f"{field}.labels")
            base = check_gcs_uri(settings.base_output_dir, f"{field}.base_output_dir") if settings.base_output_dir else run_root
            output_uri = check_gcs_uri(f"{base}/{subdir.strip('/')}", f"{field}.base_output_dir + hydra.sweep.subdir")
        except ConfigError as e:
            raise e.at(f"trial {num}: {' '.join(overrides)}") from None
        job_id = f"{run_id}_{num}"
        output_dir = "/gcs/" + output_uri[len("gs://") :]
        command = list(settings.command) if settings.command else app_program(settings.python, cwd) + hydra_app_flags(config)
        args = [
            *overrides,
            *hydra_args,
            f"hydra.run.dir={hydra_value(output_dir, f'{FIELD}.trial output dir')}",
            f"hydra.job.num={num}",
            f"hydra.job.id={job_id}",
            "hydra.mode=RUN",
            f"++hydra.callbacks.vertex_pipelines_result._target_={RESULT_CALLBACK}",
        ]
        trials.append(
            build_trial(
                number=num,
                job_id=job_id,
                overrides=overrides,
                settings=settings,
                command=command,
                args=args,
                output_uri=output_uri,
                name_prefix=app_name,
                labels=labels,
            )
        )

    first = _settings(lconf.trial, f"{FIELD}.trial")
    collector_image = lconf.collector_image or first.image_uri or "local"
    sweep = SweepSpec(
        name=name,
        run_id=run_id,
        pipeline_root=pipeline_root,
        run_root=run_root,
        trials=tuple(trials),
        collector_image=str(collector_image),
        description=f"Hydra sweep of {app_name}: {len(trials)} trials",
    )
    return Batch(mode=mode, sweep=sweep, sweep_dir=sweep_dir)


def _free_path(directory: Path, stem: str, suffix: str) -> Path:
    """`stem+suffix` in `directory`, or a numbered variant: earlier files are never overwritten."""
    path = directory / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = directory / f"{stem}-{n}{suffix}"
        n += 1
    return path


def write_batch(batch: Batch, initial_job_idx: int, **manifest_extra: Any) -> Tuple[Path, Path]:
    """Compiles pipeline.yaml and writes the manifest beside it."""
    from pipeline_builder.manifest import manifest_data, write_manifest
    from pipeline_builder.pipeline import compile_pipeline

    batch.sweep_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if initial_job_idx == 0 else f"-{initial_job_idx}"
    pipeline_path = _free_path(batch.sweep_dir, f"pipeline{tag}", ".yaml")
    manifest_path = pipeline_path.with_name(pipeline_path.name.replace("pipeline", "manifest", 1)[: -len(".yaml")] + ".json")
    compile_pipeline(batch.sweep, pipeline_path)
    data = manifest_data(batch.sweep, pipeline_path, mode=batch.mode, initial_job_idx=initial_job_idx, **manifest_extra)
    write_manifest(manifest_path, data)
    return pipeline_path, manifest_path


def submit_hint(config: DictConfig) -> str:
    """The command that runs the same sweep on Vertex AI."""
    argv = [a for a in sys.argv[1:] if not a.startswith(f"{FIELD}.mode=")]
    program = app_program("python", str(config.hydra.runtime.cwd))
    return shlex.join([*program, *argv, f"{FIELD}.mode=submit"])


def _job_returns(config: DictConfig, batch: Batch) -> List[JobReturn]:
    return [
        JobReturn(
            overrides=list(t.overrides),
            working_dir=t.output_dir,
            task_name=str(config.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value=None,
        )
        for t in batch.sweep.trials
    ]


def launch(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> Sequence[JobReturn]:
    config = launcher.config
    assert config is not None
    try:
        batch = plan_batch(launcher, job_overrides, initial_job_idx)
    except ConfigError as e:
        raise LauncherConfigError(str(e)) from None
    trials = batch.sweep.trials
    log.info(f"Vertex pipeline {batch.sweep.name}: {len(trials)} trials, run {batch.sweep.run_id}")
    for t in trials:
        log.info(f"\t#{t.number} : {' '.join(filter_overrides(t.overrides))}")

    if batch.mode != "compile":
        raise LauncherConfigError(
            f"{FIELD}.mode={batch.mode} is not available in this version; "
            f"use {FIELD}.mode=compile to write pipeline.yaml"
        )
    pipeline_path, manifest_path = write_batch(batch, initial_job_idx)
    log.info(f"Wrote {pipeline_path}")
    log.info(f"Wrote {manifest_path}")
    log.info(f"To run it on Vertex AI: {submit_hint(config)}")
    launcher.batches += 1

    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    if sweeper != BASIC_SWEEPER:
        raise NoTrialValuesError(
            f"{FIELD}.mode=compile produces no trial values, and the sweeper {sweeper} needs them "
            f"to choose its next trials. The first batch's pipeline is at {pipeline_path}. "
            f"To get values, use {FIELD}.mode=local, or {FIELD}.mode=submit with {FIELD}.wait=true."
        )
    return _job_returns(config, batch)
