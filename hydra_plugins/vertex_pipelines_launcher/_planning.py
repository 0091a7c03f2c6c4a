"""One Hydra sweep batch -> checked trial specs: the Hydra side of building a pipeline.

Reads the composed configs, decides how each trial starts (its command line, or a pickled
job), and hands plain data to `pipeline_builder`. Writes and sends nothing.
"""

import dataclasses
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline_builder import names
from pipeline_builder.cloud_paths import PathMap, gcs_to_fuse
from pipeline_builder.errors import ConfigError
from pipeline_builder.pipeline import SweepSpec
from pipeline_builder.settings import TrialSettings, trial_settings
from pipeline_builder.trials import build_trial, retry_policy
from pipeline_builder.validation import ENTRIES, check_gcs_uri, check_kms_key, check_one_of, check_trial_settings
from pipeline_builder.vertex import VertexTarget, check_target, default_project

from .config import MODES, TRIAL_HYDRA_OVERRIDE

if TYPE_CHECKING:
    from .launcher import VertexPipelinesLauncher

FIELD = "hydra.launcher"
PICKLE_ENTRY = "hydra_plugins.vertex_pipelines_launcher.pickle_entry"
JOB_PICKLE = "job.pkl"
DEFAULT_SUBDIR = "${hydra.job.num}"
LOCAL_PIPELINE_ROOT = "gs://local-pipeline-root"
AUTO_TASKS_LIMIT = 50  # above this many trials, `auto` loops (benchmarks/README.md says why)
LARGE_SWEEP_PARALLELISM = 50  # a loop's default limit: below 60 job submissions per minute
# Hydra overrides of the sweep that must not reach a trial: the trial is one plain run.
# The launcher and sweeper *choices* (hydra/launcher=...) do reach it, so a config that
# sets hydra.launcher keys composes the same way; their settings do not matter there.
_NOT_PASSED_ON = ("hydra.launcher", "hydra.sweeper", "hydra.sweep", "hydra.run", "hydra.mode", "hydra.job.id", "hydra.job.num")
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+-]*$")


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
    package: Any = None  # code=package: the PackageUpload of the project's wheel
    job_id: str = ""  # the PipelineJob's id: the run id, or a new one when resuming

    def uploads(self, paths: Optional[PathMap] = None) -> Dict[str, bytes]:
        """Files the run reads from its bucket: pickled jobs and a large sweep's trial list
        (whose folders are written as `paths` shows them, for a run on this machine)."""
        import json

        from pipeline_builder.trials import trial_rows

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


def command_args(overrides: Sequence[str], hydra_args: Sequence[str], run_dir: str, num: int, job_id: str) -> List[str]:
    """A `command` trial's arguments: its overrides, then what makes it the sweep's job `num`."""
    return [
        *overrides,
        *hydra_args,
        f"hydra.run.dir={run_dir}",
        f"hydra.job.num={num}",
        f"hydra.job.id={job_id}",
        "hydra.mode=RUN",
        TRIAL_HYDRA_OVERRIDE,
    ]


def package_module(settings: TrialSettings, cwd: str) -> str:
    """The module a `code: package` trial runs: the configured one, the `-m` module the
    app was started as, or the started script's module inside the source folder."""
    if settings.package.python_module:
        return settings.package.python_module
    program = app_program(settings.python, cwd)
    if program[1] == "-m":
        return program[2]
    source = Path(settings.package.source_dir or cwd).resolve()
    script = Path(cwd, program[1]).resolve()
    field = f"{FIELD}.trial.package.python_module"
    if script.suffix != ".py" or not script.is_relative_to(source):
        raise ConfigError(field, None, f"the module to run, e.g. trainer.task: the app {program[1]} is not a module inside {source}")
    parts = script.relative_to(source).with_suffix("").parts
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(field, None, f"the module to run, e.g. trainer.task: {'/'.join(parts)}.py is no importable module path")
    return ".".join(parts)


def _package(settings: TrialSettings, cwd: str, sweep_dir: Path, pipeline_root: str) -> Any:
    """Builds the project's wheel into the sweep dir (or reuses the one built for this
    content); uploading it, only if the bucket lacks it, is the submit step's."""
    from pipeline_builder.packaging import is_pure, write_beside

    source = Path(settings.package.source_dir or cwd).resolve()
    package = write_beside(sweep_dir, source, pipeline_root)
    if not is_pure(package.uri.rsplit("/", 1)[-1]):
        log.warning(
            f"{package.local_path} was built for this machine's platform; the prebuilt image "
            f"{settings.package.executor_image_uri} may not install it (Vertex runs Linux x86_64)"
        )
    return package


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
    return [o.input_line for o in parsed if o.input_line and not o.key_or_group.startswith(_NOT_PASSED_ON)]


def command_reaches(task_function: Any) -> bool:
    """Whether re-running this process's command line runs `task_function`."""
    if getattr(task_function, "__module__", None) != "__main__":
        return False  # defined in a test, a notebook cell, or imported from elsewhere
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True  # python -m module
    return os.path.isfile(sys.argv[0])  # python script.py (not -c, not stdin)


def uses_pickle(settings: TrialSettings, task_function: Any) -> bool:
    """`auto` pickles unless a command line reaches the task function."""
    if settings.entry != "auto":
        return settings.entry == "pickle"
    return settings.command is None and not command_reaches(task_function)


def _has_interpolation(node: Any) -> bool:
    return "${" in repr(OmegaConf.to_container(node, resolve=False))


def _settings(node: DictConfig, field: str, where: str = "") -> TrialSettings:
    try:
        data = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except Exception as e:
        raise ConfigError(field, "<unresolvable>", "settings whose interpolations resolve", str(e), where) from e
    assert isinstance(data, dict)
    return trial_settings(data)


def _job_configs(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    compose: bool,
) -> List[Tuple[TrialSettings, str, Optional[DictConfig]]]:
    """Each trial's settings, sweep subdir and composed config.

    Composing costs milliseconds per trial, so it happens only when it can matter: for
    pickled jobs, and when trial settings or the subdir may differ between trials.
    """
    config = launcher.config
    assert config is not None
    base_field = f"{FIELD}.trial"
    compose = compose or _has_interpolation(config.hydra.launcher.trial)
    compose = compose or OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir") != DEFAULT_SUBDIR
    if not compose:
        settings = _settings(config.hydra.launcher.trial, base_field)
        return [(settings, str(initial_job_idx + i), None) for i in range(len(job_overrides))]
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
            settings = _settings(job_config.hydra.launcher.trial, base_field, f"trial {num}: {' '.join(overrides)}")
            out.append((settings, str(job_config.hydra.sweep.subdir), job_config))
    finally:
        HydraConfig.instance().set_config(config)
    return out


def _resumed_run(resume: str, mode: str, pipeline_root: str, initial_job_idx: int, caching: bool) -> Tuple[str, str]:
    """The run id of the sweep being resumed (its trials keep their folders, so Vertex's
    cache recognises those that succeeded) and a new PipelineJob id."""
    import json
    import time

    field = f"{FIELD}.resume"
    if mode != "submit":
        raise ConfigError(field, resume, "null unless mode=submit: Vertex's cache is what skips the trials that succeeded")
    if not caching:
        raise ConfigError(f"{FIELD}.enable_caching", False, "null or true with resume: the cache is what skips the trials that succeeded")
    path = Path(resume)
    manifest = path / f"manifest{batch_tag(initial_job_idx)}.json" if path.is_dir() else path
    accepted = "the sweep dir (or its manifest.json) of an earlier submitted run of this sweep"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        run_id = str(data["run_id"])
        old_root = str(data["pipeline_root"])
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(field, resume, accepted, f"{manifest}: {type(e).__name__}: {e}") from None
    if old_root != pipeline_root:
        raise ConfigError(f"{FIELD}.pipeline_root", pipeline_root, f"{old_root}, the pipeline root of the run being resumed")
    return run_id, f"{run_id}-resume-{time.strftime('%Y%m%d-%H%M%S')}"


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


def _installed(module: Any) -> bool:
    """Whether a module comes from an installed distribution (or the standard library),
    which a trial image has too, rather than from the user's own files."""
    path = getattr(module, "__file__", None) or ""
    return not path or "site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)


def _pickle_job(launcher: "VertexPipelinesLauncher", job_config: DictConfig, state: Any) -> bytes:
    """The job, with the task function's own module pickled by value: the trial image need
    not hold the test file or notebook it came from."""
    import cloudpickle

    module = sys.modules.get(getattr(launcher.task_function, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    job = {
        "task_function": launcher.task_function,
        "config": job_config,
        "hydra_context": launcher.hydra_context,
        "singleton_state": state,
    }
    try:
        return cloudpickle.dumps(job)
    except Exception as e:
        raise ConfigError(
            f"{FIELD}.trial.entry", "pickle", "a task function that cloudpickle can serialise", f"{type(e).__name__}: {e}"
        ) from e
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def plan_batch(
    launcher: "VertexPipelinesLauncher",
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> Batch:
    """Checks every setting and builds every trial spec."""
    config = launcher.config
    assert config is not None
    lconf = config.hydra.launcher
    mode = check_one_of(lconf.mode, f"{FIELD}.mode", MODES)
    if lconf.max_parallel is not None and (not isinstance(lconf.max_parallel, int) or lconf.max_parallel < 1):
        raise ConfigError(f"{FIELD}.max_parallel", lconf.max_parallel, "null or a whole number >= 1")
    pipeline_root = _pipeline_root(lconf, mode)
    direction = check_one_of(lconf.objective.direction, f"{FIELD}.objective.direction", ["minimize", "maximize"])
    if lconf.encryption_spec_key_name is not None:
        check_kms_key(lconf.encryption_spec_key_name, str(lconf.location), f"{FIELD}.encryption_spec_key_name")
    target = None
    if mode == "submit":
        check_one_of(lconf.failure_policy, f"{FIELD}.failure_policy", ["slow", "fast"])
        if not isinstance(lconf.poll_interval, (int, float)) or lconf.poll_interval <= 0:
            raise ConfigError(f"{FIELD}.poll_interval", lconf.poll_interval, "a number of seconds > 0")
        target = check_target(lconf.project or default_project(), lconf.location, FIELD)
        if lconf.api_endpoint:
            target = VertexTarget(target.project, target.location, str(lconf.api_endpoint))
    app_name = str(config.hydra.job.name)
    if lconf.pipeline_name is not None:
        name = names.check_pipeline_name(str(lconf.pipeline_name), f"{FIELD}.pipeline_name")
    else:
        name = names.pipeline_name(app_name)
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    run_id = names.run_id(name, f"{sweep_dir}|{initial_job_idx}")
    pipeline_job_id = run_id
    if lconf.resume is not None:
        run_id, pipeline_job_id = _resumed_run(str(lconf.resume), mode, pipeline_root, initial_job_idx, bool(lconf.enable_caching is not False))
    run_root = f"{pipeline_root}/{run_id}"
    base_labels = names.check_labels(lconf.labels, f"{FIELD}.labels")
    derived_labels = {"hydra-app": names.label_value(app_name), "hydra-run": run_id}
    cwd = str(config.hydra.runtime.cwd)
    hydra_args = passed_on_hydra_overrides(config)

    base_settings = _settings(lconf.trial, f"{FIELD}.trial")
    check_one_of(base_settings.entry, f"{FIELD}.trial.entry", list(ENTRIES))
    pickled = uses_pickle(base_settings, launcher.task_function)
    state = None
    if pickled:
        from hydra.core.singleton import Singleton

        state = Singleton.get_state()

    planned: List[Dict[str, Any]] = []
    pickles: Dict[str, bytes] = {}
    bases = {run_root}
    jobs = _job_configs(launcher, job_overrides, initial_job_idx, compose=pickled)
    for i, (settings, subdir, job_config) in enumerate(jobs):
        num = initial_job_idx + i
        overrides = list(job_overrides[i])
        field = f"{FIELD}.trial"
        try:
            check_trial_settings(settings, field, require_image=mode != "local")
            if settings.encryption_spec_key_name is not None:
                check_kms_key(settings.encryption_spec_key_name, str(lconf.location), f"{field}.encryption_spec_key_name")
            labels = {
                **derived_labels,
                **base_labels,
                **names.check_labels(settings.labels, f"{field}.labels"),
            }
            names.check_labels(labels, f"{field}.labels")
            base = check_gcs_uri(settings.base_output_dir, f"{field}.base_output_dir") if settings.base_output_dir else run_root
            output_uri = check_gcs_uri(f"{base}/{subdir.strip('/')}", f"{field}.base_output_dir + hydra.sweep.subdir")
            output_dir = gcs_to_fuse(output_uri)
            run_dir = hydra_value(output_dir, f"{field} output dir")
            if settings.code != base_settings.code:
                raise ConfigError(f"{field}.code", settings.code, f"{base_settings.code}, as for the whole sweep (one package serves every trial)")
        except ConfigError as e:
            raise e.at(f"trial {num}: {' '.join(overrides)}") from None
        bases.add(base)
        job_id = f"{run_id}_{num}"
        if pickled:
            assert job_config is not None
            pickles[f"{output_uri}/{JOB_PICKLE}"] = _pickle_job(launcher, job_config, state)
            command = [settings.python, "-m", PICKLE_ENTRY]
            args = ["--job", f"{output_dir}/{JOB_PICKLE}", "--output-dir", output_dir, "--", *overrides]
        else:
            if settings.code == "package":
                command = [settings.python, "-m", package_module(settings, cwd), *hydra_app_flags(config)]
            else:
                command = list(settings.command) if settings.command else app_program(settings.python, cwd) + hydra_app_flags(config)
            args = command_args(overrides, hydra_args, run_dir, num, job_id)
        if settings.code == "package":  # the pools run the prebuilt image
            settings = dataclasses.replace(settings, image_uri=settings.package.executor_image_uri or "local")
        planned.append(
            dict(
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

    fan_out = check_one_of(lconf.fan_out, f"{FIELD}.fan_out", ["auto", "tasks", "parallel_for"])
    if fan_out == "tasks" and lconf.max_parallel is not None:
        raise ConfigError(
            f"{FIELD}.fan_out",
            "tasks",
            f"parallel_for or auto when {FIELD}.max_parallel is set: separate tasks cannot be "
            "limited on Vertex AI, and all of them would start at once",
        )
    if fan_out == "auto":
        fan_out = "parallel_for" if lconf.max_parallel is not None or len(planned) > AUTO_TASKS_LIMIT else "tasks"
    retries = [retry_policy(p["settings"]) for p in planned]
    if fan_out == "parallel_for" and any(r != retries[0] for r in retries):
        i = next(i for i, r in enumerate(retries) if r != retries[0])
        raise ConfigError(
            f"{FIELD}.trial.retries",
            f"{retries[0].get('num_retries', 0)} for trial {planned[0]['number']}, "
            f"{retries[i].get('num_retries', 0)} for trial {planned[i]['number']}",
            "retry settings shared by every trial when trials loop in one task (fan_out=parallel_for); "
            "fan_out=tasks gives each trial its own",
        )

    # Built only once every setting passed its checks: nothing is written before.
    package = _package(base_settings, cwd, sweep_dir, pipeline_root) if base_settings.code == "package" else None
    uris = [package.uri] if package else []
    trials = [build_trial(**kwargs, package_uris=uris) for kwargs in planned]
    parallelism = lconf.max_parallel or (LARGE_SWEEP_PARALLELISM if fan_out == "parallel_for" else None)
    sweep = SweepSpec(
        name=name,
        run_id=run_id,
        pipeline_root=pipeline_root,
        run_root=run_root,
        trials=tuple(trials),
        collector_image=str(lconf.collector_image or base_settings.image_uri or "local"),
        description=f"Hydra sweep of {app_name}: {len(trials)} trials",
        summary_name=f"summary{batch_tag(initial_job_idx)}.json",
        fan_out=fan_out,
        parallelism=parallelism,
        objective_key="" if lconf.objective.key is None else str(lconf.objective.key),
        objective_direction=direction,
        project=target.project if target else "",
        location=target.location if target else "",
    )
    return Batch(
        mode=mode,
        sweep=sweep,
        sweep_dir=sweep_dir,
        initial_job_idx=initial_job_idx,
        cwd=cwd,
        max_parallel=lconf.max_parallel,
        fresh_interpreters=bool(lconf.fresh_interpreters),
        output_bases=tuple(sorted(bases)),
        pickles=pickles,
        pipeline_labels=names.check_labels({**derived_labels, **base_labels}, f"{FIELD}.labels"),
        target=target,
        package=package,
        job_id=pipeline_job_id,
    )
