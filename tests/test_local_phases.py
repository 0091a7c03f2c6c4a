"""A local run's phases at DEBUG, and the caches across runs of one sweep: the same command
again compiles nothing and starts no CustomJob check helper, and a run with one trial
changed compiles again and checks that trial again, and only it (test_check_cache: a
refused payload stays refused; test_compile_cache: a kept pipeline is the compiled one)."""

import re

import pytest

from conftest import REPO, read_json, run_app

pytestmark = pytest.mark.slow  # local-mode sweeps in subprocesses

APP = REPO / "benchmarks" / "apps" / "sleep.py"
LOCAL = [
    "hydra/launcher=vertex_pipelines",
    "hydra.launcher.mode=local",
    "+sleep=0",
    "hydra.verbose=hydra_plugins.vertex_pipelines_launcher",
]
PHASES = ("start helpers", "compile", "runner start", "trials", "collector", "results")


def sweep(sweep_dir, cache, *overrides, check=True):
    proc = run_app(APP, ["-m", *LOCAL, *overrides, f"hydra.sweep.dir={sweep_dir}"], check=check, XDG_CACHE_HOME=str(cache))
    return proc.stdout + proc.stderr


def checks(log):
    """(verdicts from the cache, checks by the helper), from the run's DEBUG line."""
    line = next(x for x in log.splitlines() if "CustomJob checks:" in x)
    hits = int(re.search(r"(\d+) verdicts from the cache", line).group(1))
    helper = re.search(r"(\d+) checked by the helper", line)
    return hits, int(helper.group(1)) if helper else None


def test_phases_are_logged_and_an_unchanged_sweep_starts_no_helper(tmp_path):
    first = sweep(tmp_path / "sweep", tmp_path / "cache", "+i=0,1")
    phases = next(x for x in first.splitlines() if "Local run phases:" in x)
    assert [re.search(rf"{p} ([0-9.]+) s \(([0-9.]+) s CPU\)", phases) is not None for p in PHASES] == [True] * len(PHASES)
    assert "forked trials" in first and "fork server" in first
    assert checks(first) == (0, 2)
    assert "from the compile cache" not in first
    assert "the fork server started when Hydra set the launcher up" in first  # test_warm_start

    again = sweep(tmp_path / "sweep", tmp_path / "cache", "+i=0,1")
    assert checks(again) == (2, None)
    assert "the helper not started" in again
    assert "pipeline-2.yaml from the compile cache" in again  # test_compile_cache: the same bytes
    assert read_json(tmp_path / "sweep" / "summary-2.json")["counts"] == {"COMPLETED": 2}

    changed = sweep(tmp_path / "other", tmp_path / "cache", "+i=0,7")  # trial 1's payload differs
    assert checks(changed) == (1, 1)
    assert "from the compile cache" not in changed
    assert read_json(tmp_path / "other" / "summary.json")["counts"] == {"COMPLETED": 2}
