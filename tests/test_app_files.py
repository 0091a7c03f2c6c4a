"""A trial's job folder is the app's: the launcher keeps its files under `.vertex/`, so an
app may write any name Hydra's basic launcher lets it write (result.json, trial.log,
job.pkl), and a re-run into the same sweep dir sets aside only the launcher's files."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

from conftest import APPS, REPO, read_json

pytestmark = pytest.mark.slow  # sweeps of an app in subprocesses

APP = APPS / "own_files" / "app.py"
LOCAL = ["hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", "hydra.launcher.max_parallel=2"]
JOBS = {0: 1, 1: 2}  # job number -> x


def own_files(x: int) -> Dict[str, bytes]:
    """What the app writes for `x`, from the app itself. Importing it runs `@hydra.main`'s
    decorator, which sets Hydra's version base for the whole process: Hydra's singletons are
    put back, so later tests see the version base they started with."""
    from hydra.core.singleton import Singleton

    state = Singleton.get_state()
    try:
        spec = importlib.util.spec_from_file_location("own_files_app", APP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.own_files(x)
    finally:
        Singleton.set_state(state)


def sweep(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(APP), "-m", "x=1,2", f"hydra.sweep.dir={sweep_dir}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def entries(folder: Path) -> Set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Dict[str, object]:
    """The basic launcher's sweep; a local sweep; a second local sweep into the same sweep
    dir, with pickled trials, after the first one's folders were looked at."""
    root = tmp_path_factory.mktemp("own-files")
    basic = sweep(root / "basic")
    first = sweep(root / "local", *LOCAL)
    after_first = {n: {name: (root / "local" / str(n) / name).read_bytes() for name in own_files(0)} for n in JOBS}
    records = {n: root / "local" / str(n) / ".vertex" / "result.json" for n in JOBS}
    first_records = {n: read_json(path) if path.is_file() else None for n, path in records.items()}
    second = sweep(root / "local", *LOCAL, "hydra.launcher.trial.entry=pickle")
    return dict(root=root, basic=basic, first=first, second=second, after_first=after_first, first_records=first_records)


def test_the_basic_launcher_keeps_the_app_s_files(sweeps):
    for n, x in JOBS.items():
        folder = sweeps["root"] / "basic" / str(n)
        assert {name: (folder / name).read_bytes() for name in own_files(x)} == own_files(x)


def test_local_mode_keeps_the_app_s_files_byte_for_byte(sweeps):
    for n, x in JOBS.items():
        assert sweeps["after_first"][n] == own_files(x), f"job {n}"
        folder = sweeps["root"] / "local" / str(n)
        assert {name: (folder / name).read_bytes() for name in own_files(x)} == own_files(x), f"job {n}, after a re-run"


def test_the_launcher_s_record_and_log_are_under_dot_vertex(sweeps):
    first_lines: List[str] = sweeps["first"].stdout.splitlines()
    assert "2 of 2 trials completed" in sweeps["first"].stdout + sweeps["first"].stderr, first_lines[-5:]
    for n, x in JOBS.items():
        record = sweeps["first_records"][n]
        assert record is not None, f"job {n} left no .vertex/result.json"
        assert (record["status"], record["return_value"], record["number"]) == ("COMPLETED", 2.0 * x, n)
        launcher = sweeps["root"] / "local" / str(n) / ".vertex"
        log = (launcher / "trial.log").read_text()
        assert f"training x={x}" in log and f"done x={x}" in log and "the app's own log" not in log
        assert (launcher / "job.pkl").is_file()  # the second run's pickled job, beside the app's job.pkl
    summary = read_json(sweeps["root"] / "local" / "summary-2.json")
    assert {r["number"]: (r["status"], r["return_value"]) for r in summary["trials"]} == {
        n: ("COMPLETED", 2.0 * x) for n, x in JOBS.items()
    }
    assert all(r["log_path"].endswith("/.vertex/trial.log") for r in summary["trials"])


def test_a_re_run_sets_aside_only_the_launcher_s_files(sweeps):
    """A job folder holds what the basic launcher's holds, plus `.vertex/`; the first run's
    record and log are set aside in `.vertex/earlier-runs/<its run id>/`."""
    for n in JOBS:
        basic, local = sweeps["root"] / "basic" / str(n), sweeps["root"] / "local" / str(n)
        assert entries(local) == entries(basic) | {".vertex"}
        earlier = sweeps["first_records"][n]
        assert earlier is not None, f"job {n} left no .vertex/result.json"
        aside = local / ".vertex" / "earlier-runs" / earlier["run_id"]
        assert entries(aside) == {"result.json", "trial.log"}
        assert read_json(aside / "result.json") == earlier
        assert read_json(local / ".vertex" / "result.json")["run_id"] != earlier["run_id"]
