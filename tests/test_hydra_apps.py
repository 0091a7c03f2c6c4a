"""Real Hydra apps (tests/hydra_apps, see its README) swept twice, as a user would type it:
with Hydra's basic launcher and with `hydra/launcher=vertex_pipelines hydra.launcher.mode=local`.
Job by job, local mode must give what the basic launcher gives: the exit code, `.hydra/config.yaml`
and `.hydra/overrides.yaml`, the files the job wrote, and the lines it printed.

Each sweep runs once per module (`sweeps`); the comparisons are separate tests over its results."""

import difflib
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest
import yaml

pytestmark = pytest.mark.slow  # sweeps of real apps in subprocesses, twice each

APPS = Path(__file__).resolve().parent / "hydra_apps"
LOCAL_MODE = ("hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", "hydra.launcher.max_parallel=2")
MODES = ("basic", "local")

# What local mode leaves on purpose and the basic launcher does not: the only files exempt
# from the comparison. Patterns match a path relative to a job folder, or a top-level entry
# of the sweep dir (its whole subtree).
LAUNCHER_EXTRAS = {
    "job": (".vertex/*",),
    "sweep": (
        "summary.json", "report.html", "pipeline*.yaml", "manifest*.json", ".vertex_local", ".gcs", ".vertex-local.lock",
    ),
}

# How a job's printed lines are told apart from Hydra's own, in the output of both streams:
# - basic launcher: the job's lines are those after Hydra's `[...][HYDRA] \t#N : <overrides>`
#   line, up to the next such line. After the last job, the sweep's process logs with Hydra's
#   `[HYDRA]` tag (Hydra's and its callbacks' lines, e.g. on_multirun_end, a sweeper's result):
#   trailing `[HYDRA]` lines of the last job are the sweep's;
# - local mode: the job's lines are its `.vertex/trial.log`;
# - in both, Hydra's report of a failed job (from a line starting `Error executing job with
#   overrides:` to the end) is not a line the job printed: the basic launcher prints it once
#   from the sweep's process, a trial may print it itself;
# - log timestamps become `[time]`, the sweep dir `<sweep>` and the launch dir `<app>`.
JOB_MARKER = re.compile(r"^\[[^\]]*\]\[HYDRA\] \t#(\d+) : ")
HYDRA_TAGGED = re.compile(r"^\[[^\]]*\]\[HYDRA\] ")
TIMESTAMP = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")
ERROR_REPORT = "Error executing job with overrides:"
TEXT_FILES = ("*.log", "*.txt")  # job files whose text is compared too, after the same rewriting


@dataclass(frozen=True)
class Case:
    """One sweep of one app: `python <command> --multirun <overrides>` from the app's folder."""

    id: str
    app: str
    command: Tuple[str, ...]
    overrides: Tuple[str, ...]
    jobs: int = 2


CASES = [
    Case("basic_sweep", "basic_sweep", ("my_app.py",), (), jobs=4),  # sweeper params in the primary config
    Case("searchpath", "config_search_path", ("my_app.py",), ("dataset=cifar10,imagenet",)),
    Case("optuna_no_self", "optuna_sphere", ("sphere.py",), ("hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2")),
    Case("logging_override_only", "logging_override_only", ("my_app.py",), ("+x=1,2",)),
    Case("config_path_short", "multiple_config_dirs", ("my_app.py", "-cp", "dir1", "-cn", "cfg2"), ("+x=1,2",)),
    Case("config_path_long", "multiple_config_dirs", ("my_app.py", "--config-path=dir2", "--config-name=cfg1"), ("+x=1,2",)),
    Case("config_dir", "user_config_dir", ("my_app.py", "--config-dir", "user-dir"), ("dataset=cifar10,imagenet",)),
    Case("run_as_module", "run_as_module", ("-m", "module.my_app"), ("x=1,2",)),
    Case("structured_configs", "structured_config_defaults", ("my_app.py",), ("db=mysql,postgresql",)),
    Case("chdir_output_dir", "working_directory", ("my_app.py",), ("+x=1,2", "hydra.job.chdir=true")),
    Case("chdir_original_cwd", "working_directory", ("original_cwd.py",), ("+x=1,2", "hydra.job.chdir=true")),
    Case("user_callback", "custom_callback", ("my_app.py",), ("foo=a,b",)),
    Case("callback_writes_files", "pickle_job_info_callback", ("my_app.py",), ("foo=a,b",)),
    Case("failing_job", "log_jobreturn_callback", ("my_app.py",), ("+divisor=1,0",)),
    Case("print_hydra_mode", "print_hydra_mode", ("my_app.py",), ("x=1,2",)),
    Case("runtime_probe", "runtime_probe", ("probe.py",), ("x=1,2", "hydra.job.chdir=true")),
    Case("runtime_probe_no_chdir", "runtime_probe", ("probe.py",), ("x=1,2", "hydra.job.chdir=false")),
]
JOBS = [pytest.param(case, n, id=f"{case.id}-{n}") for case in CASES for n in range(case.jobs)]
BY_CASE = [pytest.param(case, id=case.id) for case in CASES]


@dataclass
class Sweep:
    """What one sweep left: its output (stdout and stderr as one stream), exit code and dirs."""

    mode: str
    argv: List[str]
    returncode: int
    output: str
    app_dir: Path
    sweep_dir: Path
    new_launch_files: Set[str]

    def normalize(self, text: str) -> str:
        """Drops what differs between any two runs: timestamps and this run's own dirs."""
        for path, name in ((self.sweep_dir, "<sweep>"), (self.app_dir, "<app>")):
            text = text.replace(str(path), name)
        return TIMESTAMP.sub("[time]", text)

    def shown(self) -> str:
        return f"{self.mode}: {' '.join(self.argv)} (exit {self.returncode})"


def files_under(root: Path) -> Set[str]:
    """Every file below `root`, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def run_sweep(case: Case, mode: str, root: Path) -> Sweep:
    """Copies the app (a run may write beside it) and sweeps it from its folder."""
    app_dir, sweep_dir = (root / mode / "app").resolve(), (root / mode / "sweep").resolve()
    shutil.copytree(APPS / case.app, app_dir)
    before = files_under(app_dir)
    argv = [
        sys.executable, *case.command, "--multirun", *case.overrides, f"hydra.sweep.dir={sweep_dir}",
        *(LOCAL_MODE if mode == "local" else ()),
    ]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONUNBUFFERED"] = "1"  # both streams in the order they were written, as on a terminal
    proc = subprocess.run(
        argv, cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    new = {f for f in files_under(app_dir) - before if "__pycache__" not in Path(f).parts}
    return Sweep(mode, argv, proc.returncode, proc.stdout, app_dir, sweep_dir, new)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Case], Dict[str, Sweep]]:
    """Runs each case's two sweeps once, on first use, for every comparison of that case.
    They run side by side (each in its own copy of the app), as they share nothing."""
    done: Dict[str, Dict[str, Sweep]] = {}

    def get(case: Case) -> Dict[str, Sweep]:
        if case.id not in done:
            root = tmp_path_factory.mktemp(case.id)
            with ThreadPoolExecutor(len(MODES)) as pool:
                runs = {mode: pool.submit(run_sweep, case, mode, root) for mode in MODES}
                done[case.id] = {mode: run.result() for mode, run in runs.items()}
        return done[case.id]

    return get


def is_extra(path: str, level: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in LAUNCHER_EXTRAS[level])


def is_text(path: str) -> bool:
    return any(fnmatch.fnmatch(Path(path).name, pattern) for pattern in TEXT_FILES)


def context(runs: Dict[str, Sweep]) -> str:
    """Both commands, and when the exit codes differ the end of local mode's output, where
    its reason shows."""
    text = f"{runs['basic'].shown()}\n{runs['local'].shown()}"
    if runs["basic"].returncode != runs["local"].returncode:
        text += "\nend of local mode's output:\n" + "\n".join(runs["local"].output.splitlines()[-12:])
    return text


def expect_equal(basic: Any, local: Any, what: str, diff: str, runs: Dict[str, Sweep]) -> None:
    """Fails with the differing values only (pytest's own rendering of both would repeat them)."""
    if basic != local:
        pytest.fail(f"{what}, basic launcher vs local mode:\n{diff}\n{context(runs)}", pytrace=False)


def set_diff(basic: Set[str], local: Set[str]) -> str:
    return f"only with the basic launcher: {sorted(basic - local)}; only in local mode: {sorted(local - basic)}"


def dict_diff(basic: Any, local: Any, path: str = "") -> List[str]:
    """Each differing leaf as `key: basic=... local=...`."""
    if isinstance(basic, dict) and isinstance(local, dict):
        out = []
        for key in sorted(set(basic) | set(local), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in local:
                out.append(f"{sub}: only with the basic launcher ({basic[key]!r})")
            elif key not in basic:
                out.append(f"{sub}: only in local mode ({local[key]!r})")
            else:
                out.extend(dict_diff(basic[key], local[key], sub))
        return out
    return [] if basic == local else [f"{path or '<root>'}: basic={basic!r} local={local!r}"]


def line_diff(basic: List[str], local: List[str]) -> str:
    return "\n".join(difflib.unified_diff(basic, local, "basic launcher", "local mode", lineterm="", n=2))


def cut_error_report(lines: List[str]) -> List[str]:
    """The lines before Hydra's report of a failed job (see the rules above)."""
    for i, line in enumerate(lines):
        if line.startswith(ERROR_REPORT):
            return lines[:i]
    return lines


def basic_job_lines(run: Sweep) -> Dict[int, List[str]]:
    """Splits the basic launcher's output into each job's lines (see the rules above)."""
    jobs: Dict[int, List[str]] = {}
    current: Optional[int] = None
    for line in run.normalize(run.output).splitlines():
        marker = JOB_MARKER.match(line)
        if marker:
            current = int(marker.group(1))
            jobs[current] = []
        elif current is not None:
            jobs[current].append(line)
    jobs = {n: cut_error_report(lines) for n, lines in jobs.items()}
    if jobs:
        last = jobs[max(jobs)]
        while last and HYDRA_TAGGED.match(last[-1]):
            last.pop()
    return jobs


def basic_prelude(run: Sweep) -> List[str]:
    """What the basic launcher's sweep process printed before its first job."""
    lines = run.normalize(run.output).splitlines()
    first = next((i for i, line in enumerate(lines) if JOB_MARKER.match(line)), len(lines))
    return lines[:first]


def local_job_lines(run: Sweep, n: int, prelude: List[str] = ()) -> Optional[List[str]]:
    """A trial's lines. The one difference allowed (README, "What each trial runs"): Hydra
    constructs the app's callbacks in every process that runs a job, so what a callback's
    constructor prints (in the basic launcher's prelude) may start each trial's log."""
    log = run.sweep_dir / str(n) / ".vertex" / "trial.log"
    if not log.is_file():
        return None
    lines = cut_error_report(run.normalize(log.read_text(errors="replace")).splitlines())
    while lines and lines[0] in prelude and not JOB_MARKER.match(lines[0]):
        lines.pop(0)
    return lines


def job_yaml(runs: Dict[str, Sweep], mode: str, n: int, name: str) -> Any:
    """A job's `.hydra/<name>`; when it is missing, the end of the job's log says why."""
    run = runs[mode]
    path = run.sweep_dir / str(n) / ".hydra" / name
    if not path.is_file():
        log = run.sweep_dir / str(n) / ".vertex" / "trial.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:]) if log.is_file() else "(no trial.log)"
        pytest.fail(f"{mode} left no {path}; end of its trial.log:\n{tail}\n{context(runs)}", pytrace=False)
    return yaml.safe_load(path.read_text())


def sweep_entries(run: Sweep) -> Set[str]:
    if not run.sweep_dir.is_dir():
        return set()
    return {p.name for p in run.sweep_dir.iterdir() if not is_extra(p.name, "sweep")}


def job_files(run: Sweep, n: int) -> Set[str]:
    return {f for f in files_under(run.sweep_dir / str(n)) if not is_extra(f, "job")}


@pytest.mark.parametrize("case", BY_CASE)
def test_exit_code(sweeps, case: Case) -> None:
    runs = sweeps(case)
    basic, local = runs["basic"].returncode, runs["local"].returncode
    expect_equal(basic, local, "exit code", f"basic={basic} local={local}", runs)


@pytest.mark.parametrize("case", BY_CASE)
def test_sweep_dir_entries(sweeps, case: Case) -> None:
    """The job folders and whatever else lands at the top of the sweep dir."""
    runs = sweeps(case)
    entries = {mode: sweep_entries(run) for mode, run in runs.items()}
    assert {str(n) for n in range(case.jobs)} <= entries["basic"], f"basic sweep is not as expected: {entries['basic']}"
    expect_equal(entries["basic"], entries["local"], "sweep dir", set_diff(entries["basic"], entries["local"]), runs)


@pytest.mark.parametrize("case", BY_CASE)
def test_files_written_beside_the_app(sweeps, case: Case) -> None:
    """Anything a run leaves in the directory it was started from."""
    runs = sweeps(case)
    basic, local = runs["basic"].new_launch_files, runs["local"].new_launch_files
    expect_equal(basic, local, "files in the launch dir", set_diff(basic, local), runs)


@pytest.mark.parametrize("case, n", JOBS)
def test_config_yaml(sweeps, case: Case, n: int) -> None:
    runs = sweeps(case)
    basic, local = (job_yaml(runs, mode, n, "config.yaml") for mode in MODES)
    expect_equal(basic, local, f"job {n} config.yaml", "\n".join(dict_diff(basic, local)), runs)


@pytest.mark.parametrize("case, n", JOBS)
def test_overrides_yaml(sweeps, case: Case, n: int) -> None:
    runs = sweeps(case)
    basic, local = (job_yaml(runs, mode, n, "overrides.yaml") for mode in MODES)
    expect_equal(basic, local, f"job {n} overrides.yaml", f"basic={basic} local={local}", runs)


@pytest.mark.parametrize("case, n", JOBS)
def test_job_files(sweeps, case: Case, n: int) -> None:
    runs = sweeps(case)
    basic, local = (job_files(runs[mode], n) for mode in MODES)
    expect_equal(basic, local, f"job {n} folder", set_diff(basic, local), runs)


@pytest.mark.parametrize("case, n", JOBS)
def test_job_text_files(sweeps, case: Case, n: int) -> None:
    """The text of the job's logs and text files that both runs wrote (Hydra's `<job>.log`, ...)."""
    runs = sweeps(case)
    both = {f for f in job_files(runs["basic"], n) & job_files(runs["local"], n) if is_text(f)}
    diffs = []
    for name in sorted(both):
        basic, local = (
            runs[mode].normalize((runs[mode].sweep_dir / str(n) / name).read_text(errors="replace")).splitlines()
            for mode in MODES
        )
        if basic != local:
            diffs.append(f"{name}:\n{line_diff(basic, local)}")
    expect_equal(diffs, [], f"job {n} files' text", "\n".join(diffs), runs)


@pytest.mark.parametrize("case, n", JOBS)
def test_printed_lines(sweeps, case: Case, n: int) -> None:
    runs = sweeps(case)
    basic = basic_job_lines(runs["basic"]).get(n)
    assert basic is not None, f"the basic launcher did not run job {n}\n{runs['basic'].output}"
    local = local_job_lines(runs["local"], n, basic_prelude(runs["basic"]))
    if local is None:
        pytest.fail(f"local mode left no trial.log for job {n}\n{context(runs)}", pytrace=False)
    expect_equal(basic, local, f"job {n} printed lines", line_diff(basic, local), runs)


@pytest.mark.parametrize("case", [c for c in BY_CASE if c.values[0].app == "runtime_probe"])
def test_probe_multirun_events(sweeps, case: Case) -> None:
    """The probe's callback records the sweep's own events (multirun start and end) in the sweep dir."""
    runs = sweeps(case)
    events = {}
    for mode, run in runs.items():
        path = run.sweep_dir / "multirun_events.txt"
        events[mode] = path.read_text().splitlines() if path.is_file() else None
    assert events["basic"] == ["on_multirun_start", "on_multirun_end"]
    shown = f"basic={events['basic']} local={events['local']}"
    expect_equal(events["basic"], events["local"], "multirun_events.txt", shown, runs)
