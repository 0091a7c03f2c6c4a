"""How a trial starts: the app's own command line run through `trial_entry`, or a pickled
job run through `pickle_entry`.

A trial re-runs the sweep's command line: the same program, the same config flags
(`--config-path`, `--config-dir`, `--config-name`, read with Hydra's own argument parser),
`--multirun`, the sweep's Hydra overrides as Hydra recorded them, then the job's overrides.
`trial_entry` turns that into the one job the basic launcher would have run.
"""

import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec.settings import Entry, TrialSettings

from ._choices import FIELD
from .trial_entry import ENTRY_MODULE

PICKLE_ENTRY = "hydra_plugins.vertex_pipelines_launcher.pickle_entry"
_NOT_PASSED_ON = ("hydra.launcher.", "hydra.sweep.dir")


def app_program(cwd: str) -> List[str]:
    """How the app was started: `-m module`, or its script relative to `cwd`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return ["-m", module]
    return [os.path.relpath(os.path.abspath(sys.argv[0]), cwd)]


def hydra_app_flags(argv: Sequence[str], config: DictConfig) -> List[str]:
    """The flags that chose the primary config: `--config-path` as the sweep's command line
    gave it (read with Hydra's own parser: `-cp X`, `--config-path=X`), `--config-dir` and
    `--config-name` as Hydra resolved them (also for a sweep launched from Python)."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(list(argv))
    flags = [f"--config-path={args.config_path}"] if args.config_path is not None else []
    for source in config.hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            flags.append(f"--config-dir={os.path.relpath(source.path, config.hydra.runtime.cwd)}")
    if config.hydra.job.config_name:
        flags.append(f"--config-name={config.hydra.job.config_name}")
    return flags


def sweep_hydra_overrides(config: DictConfig) -> List[str]:
    """The sweep's Hydra overrides as Hydra recorded them (`${...}` kept as typed): a trial
    composes its job from these, as the basic launcher's `load_sweep_config` does.

    Left out: the launcher's own settings and the sweep dir, which say how and where the
    sweep runs, not what a job is (the trial entry sets the sweep dir). A resumed sweep
    changes them, and its trials must keep their arguments for Vertex's cache to know them.
    """
    given = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
    assert isinstance(given, list)
    parsed = OverridesParser.create().parse_overrides([str(o) for o in given])
    return [str(o.input_line) for o in parsed if not o.key_or_group.startswith(_NOT_PASSED_ON)]


def split_program(command: Sequence[str], field: str) -> Tuple[List[str], List[str]]:
    """`[interpreter..., script]` or `[interpreter..., -m, module]` -> both parts."""
    command = list(command)
    if "-m" in command[:-1]:
        at = command.index("-m")
        interpreter, program = command[:at], command[at:]
    else:
        interpreter, program = command[:-1], command[-1:]
    if not interpreter or not program or (program[0] != "-m" and len(program) != 1):
        raise ConfigError(
            field,
            command,
            "a Python interpreter followed by the app: [python, train.py] or [python, -m, pkg.app] "
            "(interpreter flags and launchers such as torchrun may come before the app)",
        )
    return interpreter, program


def trial_command(
    settings: TrialSettings,
    cwd: str,
    argv: Sequence[str],
    config: DictConfig,
    module: Optional[str],
) -> Tuple[List[str], List[str]]:
    """The container command (the entry module) and the arguments that hold everything
    else except the job's own settings (number, run id, sweep dir, overrides)."""
    field = f"{FIELD}.trial.command"
    if settings.command:
        interpreter, program = split_program(settings.command, field)
    else:
        interpreter, program = [settings.python], (["-m", module] if module else app_program(cwd))
    return [*interpreter, "-m", ENTRY_MODULE], [
        *program,
        *hydra_app_flags(argv, config),
        "--multirun",
        *sweep_hydra_overrides(config),
    ]


def job_args(app_args: Sequence[str], overrides: Sequence[str], num: int, run_id: str, sweep_dir: str) -> List[str]:
    """A trial's arguments: the entry's options, then the app's command line for this job."""
    return ["--num", str(num), "--run-id", run_id, "--sweep-dir", sweep_dir, "--", *app_args, *overrides]


def pickle_args(job_path: str, overrides: Sequence[str], num: int, run_id: str, sweep_dir: str) -> List[str]:
    """A pickled trial's arguments; the overrides after `--` only show in the console."""
    return ["--job", job_path, "--num", str(num), "--run-id", run_id, "--sweep-dir", sweep_dir, "--", *overrides]


def package_module(settings: TrialSettings, cwd: str) -> str:
    """The module a `code: package` trial runs: the configured one, the `-m` module the
    app was started as, or the started script's module inside the source folder."""
    if settings.package.python_module:
        return settings.package.python_module
    program = app_program(cwd)
    if program[0] == "-m":
        return program[1]
    source = Path(settings.package.source_dir or cwd).resolve()
    script = Path(cwd, program[0]).resolve()
    field = f"{FIELD}.trial.package.python_module"
    if script.suffix != ".py" or not script.is_relative_to(source):
        raise ConfigError(
            field, None, f"the module to run, e.g. trainer.task: the app {program[0]} is not a module inside {source}"
        )
    parts = script.relative_to(source).with_suffix("").parts
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(field, None, f"the module to run, e.g. trainer.task: {'/'.join(parts)}.py is no importable module path")
    return ".".join(parts)


def command_reaches(task_function: Any) -> bool:
    """Whether re-running this process's command line runs `task_function`."""
    if getattr(task_function, "__module__", None) != "__main__":
        return False  # defined in a test, a notebook cell, or imported from elsewhere
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True  # python -m module
    return os.path.isfile(sys.argv[0])  # python script.py (not -c, not stdin)


def uses_pickle(entry: Entry, settings: TrialSettings, task_function: Any, from_command_line: bool) -> bool:
    """`auto` runs a command when `trial.command` names one, or when Hydra's command-line
    entry started the sweep and re-running that command line reaches the task function;
    it pickles every other sweep (one composed in Python has no command to re-run)."""
    if entry is not Entry.AUTO:
        return entry is Entry.PICKLE
    return settings.command is None and not (from_command_line and command_reaches(task_function))


def _installed(module: Any) -> bool:
    """Whether a module comes from an installed distribution (or the standard library),
    which a trial image has too, rather than from the user's own files."""
    path = getattr(module, "__file__", None) or ""
    return not path or "site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)


def pickle_job(task_function: Any, hydra_context: Any, job_config: DictConfig, state: Any) -> bytes:
    """The job, with the task function's own module pickled by value: the trial image need
    not hold the test file or notebook it came from."""
    import cloudpickle

    module = sys.modules.get(getattr(task_function, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    job = {"task_function": task_function, "config": job_config, "hydra_context": hydra_context, "singleton_state": state}
    try:
        return cloudpickle.dumps(job)
    except Exception as e:
        raise ConfigError(
            f"{FIELD}.trial.entry",
            Entry.PICKLE.value,
            "a task function that cloudpickle can serialise",
            f"{type(e).__name__}: {e}",
        ) from e
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
