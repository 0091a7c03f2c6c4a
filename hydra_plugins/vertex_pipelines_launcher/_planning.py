"""One Hydra sweep batch -> checked trial specs: the plan that `_core` writes and runs.

Checks the launcher's settings, names the run, and assembles each trial from its
composed settings (`_compose`) and its command (`_commands`). Writes and sends nothing,
except the project's wheel in `code: package` mode, built once every check has passed.
"""

import dataclasses
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from hydra_vertex_pipelines.components.sweep_files import JOB_PICKLE, SUMMARY_STEM, batch_file, gcs_to_fuse
from hydra_vertex_pipelines.pipeline_builder.spec import names
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.pipeline import SweepSpec
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
from hydra_vertex_pipelines.pipeline_builder.spec.trials import build_trial, retry_policy
from hydra_vertex_pipelines.pipeline_builder.spec.validation import (
    ENTRIES,
    LAUNCHER_SETTINGS,
    check_arguments,
    check_gcs_uri,
    check_kms_key,
    check_launcher_settings,
    check_one_of,
    check_trial_settings,
)
from hydra_vertex_pipelines.pipeline_builder.cloud.vertex import VertexTarget, check_target, default_project

from . import _commands
from ._compose import read_settings, plan_jobs
from ._resume import resumed_run
from .config import FIELD, MODES

if TYPE_CHECKING:
    from .launcher import VertexPipelinesLauncher

LOCAL_PIPELINE_ROOT = "gs://local-pipeline-root"
AUTO_TASKS_LIMIT = 50  # above this many trials, `auto` loops (benchmarks/README.md says why)
LARGE_SWEEP_PARALLELISM = 50  # a loop's default limit: below 60 job submissions per minute


log = logging.getLogger(__name__)


def batch_tag(initial_job_idx: int) -> str:
    """Distinguishes the files of later batches: pipeline.yaml, pipeline-4.yaml, ..."""
    return "" if initial_job_idx == 0 else f"-{initial_job_idx}"


@dataclass(frozen=True)
class Batch:
    """A planned sweep batch: the pipeline to build, its pickled jobs, where files go."""

    mode: str
    sweep: SweepSpec
    sweep_dir: Path
    initial_job_idx: int
    cwd: str
    max_parallel: Optional[int]
    fresh_interpreters: bool
    output_bases: Tuple[str, ...]
    pickles: Dict[str, bytes] = field(default_factory=dict)  # gs:// URI -> pickled job
    pipeline_labels: Dict[str, str] = field(default_factory=dict)
    target: Optional[VertexTarget] = None  # submit mode: where the PipelineJob goes
    packages: Tuple[Any, ...] = ()  # code=package: PackageUploads of this launcher's wheel and the project's
    job_id: str = ""  # the PipelineJob's id: the run id, or a new one when resuming

    def uploads(self, paths: Optional[PathMap] = None) -> Dict[str, bytes]:
        """Files the run reads from its bucket: pickled jobs and a large sweep's trial list
        (whose folders are written as `paths` shows them, for a run on this machine)."""
        import json

        from hydra_vertex_pipelines.pipeline_builder.spec.trials import trial_rows

        files = dict(self.pickles)
        if self.sweep.trials_file:
            rows = trial_rows(self.sweep.trials)
            files[self.sweep.trials_file] = json.dumps(paths.in_value(rows) if paths else rows).encode()
        return files

    def local_paths(self) -> PathMap:
        """Where cloud paths live on this machine: trial folders in the sweep dir."""
        return PathMap(str(self.sweep_dir / ".gcs"), {base: str(self.sweep_dir) for base in self.output_bases})

    @property
    def tag(self) -> str:
        return batch_tag(self.initial_job_idx)


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


def _packages(settings: TrialSettings, config: DictConfig, cwd: str, sweep_dir: Path, pipeline_root: str) -> Tuple[Any, ...]:
    """Builds the project's wheel into the sweep dir (or reuses the one built for this
    content), checks that the prebuilt image can run trials from it, and puts this
    launcher's own wheel beside it: the image installs only what the job lists and what
    that requires, and this launcher may not be on the image's package index. Uploading
    them, each only if the bucket lacks it, is the submit step's."""
    from hydra_vertex_pipelines.pipeline_builder.wheels import launcher_wheel
    from hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel import check_wheel, is_pure, write_beside

    source = Path(settings.package.source_dir or cwd).resolve()
    package = write_beside(sweep_dir, source, pipeline_root)
    check_wheel(package.local_path, app_config_files(config, source))
    if not is_pure(package.uri.rsplit("/", 1)[-1]):
        log.warning(
            f"{package.local_path} was built for this machine's platform; the prebuilt image "
            f"{settings.package.executor_image_uri} may not install it (Vertex runs Linux x86_64)"
        )
    # The launcher's wheel first: an image that installs the URIs one at a time then finds
    # the project's requirement on it met, rather than looking for it on its index.
    return launcher_wheel.write_beside(sweep_dir, pipeline_root), package


def _pipeline_root(lconf: DictConfig, mode: str) -> str:
    if lconf.pipeline_root is not None:
        return check_gcs_uri(lconf.pipeline_root, f"{FIELD}.pipeline_root")
    if mode == "local":
        return LOCAL_PIPELINE_ROOT
    raise ConfigError(
        f"{FIELD}.pipeline_root",
        None,
        f"a gs:// URI for pipeline artifacts and trial outputs, required in {mode} mode",
        "e.g. hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
    )


@dataclass(frozen=True)
class LauncherPlan:
    """The launcher-level settings, checked: where the run goes and what it is called."""

    mode: str
    pipeline_root: str
    name: str
    run_id: str
    job_id: str  # the PipelineJob's id: the run id, or a new one when resuming
    direction: str
    fan_out: str
    target: Optional[VertexTarget]


def check_launcher(config: DictConfig, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> LauncherPlan:
    """Checks the sweep-wide settings and names the run; a resume must match its sweep."""
    lconf = config.hydra.launcher
    mode = check_one_of(lconf.mode, f"{FIELD}.mode", MODES)
    check_launcher_settings({key: lconf.get(key) for key in LAUNCHER_SETTINGS}, FIELD)
    pipeline_root = _pipeline_root(lconf, mode)
    direction = check_one_of(lconf.objective.direction, f"{FIELD}.objective.direction", ["minimize", "maximize"])
    if lconf.encryption_spec_key_name is not None:
        check_kms_key(lconf.encryption_spec_key_name, str(lconf.location), f"{FIELD}.encryption_spec_key_name")
    target = None
    if mode == "submit":
        check_one_of(lconf.failure_policy, f"{FIELD}.failure_policy", ["slow", "fast"])
        if lconf.poll_interval is not None and (not isinstance(lconf.poll_interval, (int, float)) or lconf.poll_interval <= 0):
            raise ConfigError(f"{FIELD}.poll_interval", lconf.poll_interval, "null or a number of seconds > 0")
        if not isinstance(lconf.reconnect_timeout, (int, float)) or lconf.reconnect_timeout < 0:
            raise ConfigError(f"{FIELD}.reconnect_timeout", lconf.reconnect_timeout, "a number of seconds >= 0")
        target = check_target(lconf.project or default_project(), lconf.location, FIELD)
        if lconf.api_endpoint:
            target = VertexTarget(target.project, target.location, str(lconf.api_endpoint))
    fan_out = check_one_of(lconf.fan_out, f"{FIELD}.fan_out", ["auto", "tasks", "parallel_for"])
    if fan_out == "tasks" and lconf.max_parallel is not None:
        raise ConfigError(
            f"{FIELD}.fan_out",
            "tasks",
            f"parallel_for or auto when {FIELD}.max_parallel is set: separate tasks cannot be "
            "limited on Vertex AI, and all of them would start at once",
        )
    if fan_out == "auto":
        fan_out = "parallel_for" if lconf.max_parallel is not None or len(job_overrides) > AUTO_TASKS_LIMIT else "tasks"
    app_name = str(config.hydra.job.name)
    if lconf.pipeline_name is not None:
        name = names.check_pipeline_name(str(lconf.pipeline_name), f"{FIELD}.pipeline_name")
    else:
        name = names.pipeline_name(app_name)
    # A random part: two launches into one sweep dir in the same second are two runs.
    run_id = names.run_id(name, f"{config.hydra.sweep.dir}|{initial_job_idx}|{secrets.token_hex(8)}")
    job_id = run_id
    if lconf.resume is not None:
        run_id, job_id = resumed_run(
            str(lconf.resume),
            mode=mode,
            caching=lconf.enable_caching is not False,
            pipeline_root=pipeline_root,
            pipeline_name=name,
            tag=batch_tag(initial_job_idx),
            job_overrides=job_overrides,
        )
    return LauncherPlan(mode, pipeline_root, name, run_id, job_id, direction, fan_out, target)


def _check_loop_retries(planned: List[Dict[str, Any]]) -> None:
    """Trials looped in one task share its retry policy."""
    retries = [retry_policy(p["settings"]) for p in planned]
    if any(r != retries[0] for r in retries):
        i = next(i for i, r in enumerate(retries) if r != retries[0])
        raise ConfigError(
            f"{FIELD}.trial.retries",
            f"{retries[0].get('num_retries', 0)} for trial {planned[0]['number']}, "
            f"{retries[i].get('num_retries', 0)} for trial {planned[i]['number']}",
            "retry settings shared by every trial when trials loop in one task (fan_out=parallel_for); "
            "fan_out=tasks gives each trial its own",
        )


def plan_batch(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    argv: Sequence[str] = (),
) -> Batch:
    """Checks every setting and builds every trial spec; `argv` is the sweep's command line."""
    config = launcher.config
    assert config is not None
    lconf = config.hydra.launcher
    plan = check_launcher(config, job_overrides, initial_job_idx)
    app_name = str(config.hydra.job.name)
    run_root = f"{plan.pipeline_root}/{plan.run_id}"
    base_labels = names.check_labels(lconf.labels, f"{FIELD}.labels")
    derived_labels = {"hydra-app": names.label_value(app_name), "hydra-run": plan.run_id}
    cwd = str(config.hydra.runtime.cwd)
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()

    base_settings = read_settings(lconf.trial, f"{FIELD}.trial")
    check_one_of(base_settings.entry, f"{FIELD}.trial.entry", list(ENTRIES))
    pickled = _commands.uses_pickle(base_settings, launcher.task_function)
    state = None
    if pickled:
        from hydra.core.singleton import Singleton

        state = Singleton.get_state()

    planned: List[Dict[str, Any]] = []
    pickles: Dict[str, bytes] = {}
    bases = {run_root}
    entry: Dict[Any, Tuple[List[str], List[str]]] = {}  # the command, per distinct settings
    for i, job in enumerate(plan_jobs(launcher, job_overrides, initial_job_idx, compose=pickled)):
        num = initial_job_idx + i
        overrides = list(job_overrides[i])
        field = f"{FIELD}.trial"
        settings = job.settings
        try:
            check_trial_settings(settings, field, require_image=plan.mode != "local")
            if settings.encryption_spec_key_name is not None:
                check_kms_key(settings.encryption_spec_key_name, str(lconf.location), f"{field}.encryption_spec_key_name")
            labels = {**derived_labels, **base_labels, **names.check_labels(settings.labels, f"{field}.labels")}
            names.check_labels(labels, f"{field}.labels")
            for key, value in labels.items():
                if value == "":  # Vertex takes it; gcpc's launcher drops it before the CustomJob is created
                    where = f"{field}.labels.{key}" if key in (settings.labels or {}) else f"{FIELD}.labels.{key}"
                    raise ConfigError(
                        where,
                        value,
                        "a non-empty label value: gcpc's CustomJob launcher removes empty values (recursive_remove_empty), "
                        "so the trials' CustomJobs would not carry the label",
                        "give it a value, e.g. 'true'",
                    )
            base = check_gcs_uri(settings.base_output_dir, f"{field}.base_output_dir") if settings.base_output_dir else run_root
            output_uri = check_gcs_uri(f"{base}/{job.subdir.strip('/')}", f"{field}.base_output_dir + hydra.sweep.subdir")
            if settings.code != base_settings.code:
                raise ConfigError(f"{field}.code", settings.code, f"{base_settings.code}, as for the whole sweep (one package serves every trial)")
            if pickled:
                assert job.config is not None
                pickles[f"{output_uri}/{JOB_PICKLE}"] = _commands.pickle_job(launcher.task_function, launcher.hydra_context, job.config, state)
                command = [settings.python, "-m", _commands.PICKLE_ENTRY]
                args = _commands.pickle_args(f"{gcs_to_fuse(output_uri)}/{JOB_PICKLE}", overrides, num, plan.run_id, gcs_to_fuse(base))
            else:
                key = (settings.python, tuple(settings.command or ()))
                if key not in entry:
                    module = _commands.package_module(settings, cwd) if settings.code == "package" else None
                    entry[key] = _commands.trial_command(settings, cwd, argv, config, module)
                command, app_args = entry[key]
                args = _commands.job_args(app_args, overrides, num, plan.run_id, gcs_to_fuse(base))
            check_arguments([*command, *args], 0, "override")  # before a wheel is built
        except ConfigError as e:
            raise e.at(f"trial {num}: {' '.join(overrides)}") from None
        bases.add(base)
        if settings.code == "package":  # the pools run the prebuilt image
            settings = dataclasses.replace(settings, image_uri=settings.package.executor_image_uri or "local")
        planned.append(
            dict(
                number=num,
                job_id=f"{plan.run_id}_{num}",
                overrides=overrides,
                settings=settings,
                command=command,
                args=args,
                output_uri=output_uri,
                name_prefix=app_name,
                labels=labels,
            )
        )
    if plan.fan_out == "parallel_for":
        _check_loop_retries(planned)
    collector_image = lconf.collector_image or base_settings.image_uri
    if not collector_image and plan.mode != "local":
        raise ConfigError(
            f"{FIELD}.collector_image",
            None,
            "an image with python3, sh and this launcher installed (kfp comes with it), for the collector task: "
            "with trial.code=package the trials run on a prebuilt image, so there is no trial image to default to",
            "e.g. the image built from examples/quickstart/Dockerfile",
        )

    # Built only once every setting passed its checks: nothing is written before.
    packages = _packages(base_settings, config, cwd, sweep_dir, plan.pipeline_root) if base_settings.code == "package" else ()
    uris = [package.uri for package in packages]
    trials = [build_trial(**kwargs, package_uris=uris) for kwargs in planned]
    parallelism = lconf.max_parallel or (LARGE_SWEEP_PARALLELISM if plan.fan_out == "parallel_for" else None)
    sweep = SweepSpec(
        name=plan.name,
        run_id=plan.run_id,
        pipeline_root=plan.pipeline_root,
        run_root=run_root,
        trials=tuple(trials),
        collector_image=str(collector_image or "local"),
        description=f"Hydra sweep of {app_name}: {len(trials)} trials",
        summary_name=batch_file(SUMMARY_STEM, batch_tag(initial_job_idx), ".json"),
        fan_out=plan.fan_out,
        parallelism=parallelism,
        objective_key="" if lconf.objective.key is None else str(lconf.objective.key),
        objective_direction=plan.direction,
        project=plan.target.project if plan.target else "",
        location=plan.target.location if plan.target else "",
    )
    return Batch(
        mode=plan.mode,
        sweep=sweep,
        sweep_dir=sweep_dir,
        initial_job_idx=initial_job_idx,
        cwd=cwd,
        max_parallel=lconf.max_parallel,
        fresh_interpreters=bool(lconf.fresh_interpreters),
        output_bases=tuple(sorted(bases)),
        pickles=pickles,
        pipeline_labels=names.check_labels({**derived_labels, **base_labels}, f"{FIELD}.labels"),
        target=plan.target,
        packages=packages,
        job_id=plan.job_id,
    )
