"""One Hydra sweep batch -> the plan that a mode writes and runs.

Checks the sweep-wide settings and names the run (`_settings`), checks each trial and
makes its command (`_trials`), and puts the pipeline's spec together. Writes and sends
nothing, except the project's wheel in `code: package` mode, built once every check has
passed.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from hydra_vertex_pipelines.components.atomic_write import os_reason
from hydra_vertex_pipelines.components.experiments import ExperimentTarget, longest_experiment
from hydra_vertex_pipelines.components.failures import RULES, Rule
from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec import names
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import Code, TrialSettings
from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
from hydra_vertex_pipelines.pipeline_builder.spec.trials import build_trial, trial_rows

from ._choices import FIELD, FanOut, Mode
from ._context import LaunchContext
from ._errors import LauncherWriteError
from ._settings import LaunchSettings, SubmitSettings, check_settings
from ._trials import PlannedTrials, plan_trials

LARGE_SWEEP_PARALLELISM = 50  # a loop's default limit: below 60 job submissions per minute

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """A planned sweep batch: the pipeline to build, its pickled jobs, where files go."""

    mode: Mode
    sweep: SweepSpec
    sweep_dir: Path
    initial_job_idx: int
    cwd: str
    max_parallel: Optional[int]
    fresh_interpreters: bool
    output_bases: Tuple[str, ...]
    pickles: Dict[str, bytes] = field(default_factory=dict)  # gs:// URI -> pickled job
    pipeline_labels: Dict[str, str] = field(default_factory=dict)
    submit: Optional[SubmitSettings] = None  # submit mode: where the PipelineJob goes, and how
    packages: Tuple[Any, ...] = ()  # code=package: PackageUploads of this launcher's wheel and the project's
    job_id: str = ""  # the PipelineJob's id: the run id, or a new one when resuming
    failure_rules: Tuple[Rule, ...] = RULES  # what a failed trial is classified by
    compiled_for: Optional[SubmitSettings] = None  # compile mode: the submit settings known now

    def uploads(self, paths: Optional[PathMap] = None) -> Dict[str, bytes]:
        """Files the run reads from its bucket: pickled jobs and a large sweep's trial list
        (whose folders are written as `paths` shows them, for a run on this machine)."""
        files = dict(self.pickles)
        if self.sweep.trials_file:
            rows = trial_rows(self.sweep.trials)
            files[self.sweep.trials_file] = json.dumps(paths.in_value(rows) if paths else rows).encode()
        return files

    def local_paths(self) -> PathMap:
        """Where cloud paths live on this machine: trial folders in the sweep dir."""
        return PathMap(
            str(SweepFiles(self.sweep_dir).launcher_buckets), {base: str(self.sweep_dir) for base in self.output_bases}
        )

    @property
    def tag(self) -> str:
        return SweepFiles.of_batch(self.sweep_dir, self.initial_job_idx).tag


def app_config_files(config: DictConfig, source: Path) -> List[str]:
    """The app's config files (its primary config folder, from Hydra's config sources)
    as a wheel built from `source` would hold them: `trainer/conf/config.yaml`, ..."""
    import importlib.util

    files: List[str] = []
    for src in config.hydra.runtime.config_sources:
        if src.provider != "main":
            continue
        if src.schema == "file":
            folder = Path(str(src.path)).resolve()
        elif src.schema == "pkg":
            spec = importlib.util.find_spec(str(src.path))
            if spec is None or not spec.submodule_search_locations:
                continue
            folder = Path(list(spec.submodule_search_locations)[0]).resolve()
        else:
            continue
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.y*ml")):
            rel = path.relative_to(source).as_posix() if path.is_relative_to(source) else path.as_posix()
            files.append(rel[len("src/") :] if rel.startswith("src/") else rel)
    return files


def _packages(settings: TrialSettings, context: LaunchContext, pipeline_root: str) -> Tuple[Any, ...]:
    """Builds the project's wheel into the sweep dir (or reuses the one built for this
    content), checks that the prebuilt image can run trials from it, and puts this
    launcher's own wheel beside it: the image installs only what the job lists and what
    that requires, and this launcher may not be on the image's package index. Uploading
    them, each only if the bucket lacks it, is the submit step's."""
    from hydra_vertex_pipelines.pipeline_builder.wheels import launcher_wheel
    from hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel import check_wheel, is_pure, write_beside

    source = Path(settings.package.source_dir or context.cwd).resolve()
    try:  # each wheel is written whole or not at all, and kept: the next launch reuses it by content
        package = write_beside(context.sweep_dir, source, pipeline_root)
        check_wheel(package.local_path, app_config_files(context.config, source))
        if not is_pure(package.uri.rsplit("/", 1)[-1]):
            log.warning(
                f"{package.local_path} was built for this machine's platform; the prebuilt image "
                f"{settings.package.executor_image_uri} may not install it (Vertex runs Linux x86_64)"
            )
        launcher = launcher_wheel.write_beside(context.sweep_dir, pipeline_root)
    except OSError as e:
        folder = SweepFiles(context.sweep_dir).packages()
        raise LauncherWriteError(f"Could not write the trials' wheels under {folder}: {os_reason(e)}") from None
    # The launcher's wheel first: an image that installs the URIs one at a time then finds
    # the project's requirement on it met, rather than looking for it on its index.
    return launcher, package


def _collector_image(settings: LaunchSettings, base_settings: TrialSettings) -> str:
    image = settings.collector_image or base_settings.image_uri
    if not image and settings.mode is not Mode.LOCAL:
        raise ConfigError(
            f"{FIELD}.collector_image",
            None,
            "an image with python3, sh and this launcher installed (kfp comes with it), for the collector task: "
            "with trial.code=package the trials run on a prebuilt image, so there is no trial image to default to",
            "e.g. the image built from examples/quickstart/Dockerfile",
        )
    return str(image or "local")


def _experiment(submit: Optional[SubmitSettings], last_number: int) -> str:
    """The collector's experiment (JSON), "" for none: only a submitted run logs its trials
    as experiment runs, to the project, region and endpoint the PipelineJob goes to."""
    if submit is None or not submit.experiment:
        return ""
    longest = longest_experiment(last_number)
    if len(submit.experiment) > longest:
        raise ConfigError(
            f"{FIELD}.experiment",
            submit.experiment,
            f"a name of at most {longest} characters for this sweep: each trial is the run "
            "`<run id>-t<number>` of it, and Vertex takes at most 121 characters for `<experiment>-<run>`",
        )
    target = submit.target
    return ExperimentTarget(submit.experiment, target.project, target.location, target.api_endpoint or "").to_json()


def _sweep(
    context: LaunchContext,
    settings: LaunchSettings,
    planned: PlannedTrials,
    collector_image: str,
    package_uris: List[str],
    initial_job_idx: int,
) -> SweepSpec:
    trials = [build_trial(**kwargs, package_uris=package_uris) for kwargs in planned.trials]
    parallelism = settings.max_parallel or (LARGE_SWEEP_PARALLELISM if settings.fan_out is FanOut.PARALLEL_FOR else None)
    target = settings.submit.target if settings.submit else None
    return SweepSpec(
        name=settings.name,
        run_id=settings.run_id,
        pipeline_root=settings.pipeline_root,
        run_root=settings.run_root,
        trials=tuple(trials),
        collector_image=collector_image,
        description=f"Hydra sweep of {context.app_name}: {len(trials)} trials",
        tag=SweepFiles.of_batch(context.sweep_dir, initial_job_idx).tag,
        fan_out=settings.fan_out.value,
        parallelism=parallelism,
        objective_key=settings.objective_key,
        objective_direction=settings.direction.value,
        # For the report's console links: the emulator has no console to link to.
        project=target.project if target and not target.emulated else "",
        location=target.location if target and not target.emulated else "",
        cost_rates=settings.cost_rates,
        experiment=_experiment(settings.submit, max(t.number for t in trials)),
    )


def plan_batch(context: LaunchContext, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Batch:
    """Checks every setting and builds every trial spec; writes nothing but the project's
    wheel (code=package), once every check has passed."""
    settings = check_settings(context, job_overrides, initial_job_idx)
    planned = plan_trials(context, settings, job_overrides, initial_job_idx)
    collector_image = _collector_image(settings, planned.base_settings)
    # Built only once every setting passed its checks: nothing is written before.
    packages = _packages(planned.base_settings, context, settings.pipeline_root) if planned.code is Code.PACKAGE else ()
    sweep = _sweep(context, settings, planned, collector_image, [package.uri for package in packages], initial_job_idx)
    return Batch(
        mode=settings.mode,
        sweep=sweep,
        sweep_dir=context.sweep_dir,
        initial_job_idx=initial_job_idx,
        cwd=context.cwd,
        max_parallel=settings.max_parallel,
        fresh_interpreters=settings.fresh_interpreters,
        output_bases=tuple(sorted(planned.output_bases)),
        pickles=planned.pickles,
        pipeline_labels=names.check_labels({**settings.derived_labels, **settings.labels}, f"{FIELD}.labels"),
        submit=settings.submit,
        packages=packages,
        job_id=settings.job_id,
        failure_rules=settings.failure_rules,
        compiled_for=settings.compiled_for,
    )
