"""What `status`, `results` and `cancel` say of a run submitted to the emulator, run as a
user runs them in a new terminal (no STORAGE_EMULATOR_HOST exported)."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import APPS, CLI, run_app
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # the emulator's command line, sweeps in subprocesses

FAULTS = APPS / "faults"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = Emulator(tmp_path_factory.mktemp("cli") / "data")
    yield started
    started.stop(signal.SIGTERM)


def submit(emulator: Emulator, sweep_dir, values: str, *extra: str, check: bool = True):
    return run_app(
        FAULTS / "app.py",
        [
            *emulator.faults_app_submit("cli"),
            f"hydra.sweep.dir={sweep_dir}",
            *extra,
            f"x={values}",
        ],
        check=check,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command in a new terminal: STORAGE_EMULATOR_HOST is not exported."""
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def finished(emulator, tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("finished")
    submit(emulator, sweep_dir, "1,2")
    return sweep_dir


def test_status_counts_the_trials_not_the_collector_and_links_to_what_exists(finished):
    proc = cli("status", str(finished))
    assert proc.returncode == 0, proc
    first, url = proc.stdout.splitlines()[:2]
    assert first.endswith(": PIPELINE_STATE_SUCCEEDED (2 succeeded, 0 failed, 0 running of 2 trials)"), first
    url = url.strip()
    assert url.startswith("http://127.0.0.1:") and "/v1/projects/local/" in url, url
    with urllib.request.urlopen(url, timeout=30) as reply:  # the emulator's own job
        assert json.loads(reply.read())["state"] == "PIPELINE_STATE_SUCCEEDED"


def test_results_in_a_new_terminal_find_the_emulators_storage(finished):
    proc = cli("results", str(finished))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ": 2 trials: 2 completed  (saved " in proc.stdout and "{" not in proc.stdout.splitlines()[0], proc.stdout
    assert "Traceback" not in proc.stderr


def test_cancel_of_a_run_that_ended_says_so(finished):
    proc = cli("cancel", str(finished))
    assert proc.returncode == 1 and "already ended (PIPELINE_STATE_SUCCEEDED): nothing to cancel" in proc.stdout, proc


def test_results_of_a_cancelled_run_come_from_the_trials_records(emulator, tmp_path):
    submit(emulator, tmp_path, "1", "hydra.launcher.wait=false", "hydra.launcher.max_parallel=2", "+sleep=0,60")
    deadline = time.monotonic() + 60
    while "1 succeeded" not in cli("status", str(tmp_path)).stdout:
        assert time.monotonic() < deadline, "trial 0 never finished"
        time.sleep(0.5)
    proc = cli("cancel", str(tmp_path))
    assert proc.returncode == 0 and proc.stdout.startswith("cancel requested: "), proc
    while "PIPELINE_STATE_CANCELLED" not in cli("status", str(tmp_path)).stdout:
        assert time.monotonic() < deadline + 60, "never cancelled"
        time.sleep(0.5)
    lines = cli("results", str(tmp_path)).stdout.splitlines()
    assert lines[0].endswith("PIPELINE_STATE_CANCELLED: no summary at " + lines[0].split(" no summary at ")[1])
    assert "from the trials' own records:" in lines[0]
    assert lines[1].startswith("  #0    COMPLETED ") and lines[1].endswith("1.0"), lines
    assert lines[2].startswith("  #1    MISSING ") and "sleep=60" in lines[2] and lines[2].endswith("no record"), lines


def test_a_failed_trials_log_is_one_that_exists(emulator, tmp_path, monkeypatch):
    """Against the emulator there is no Cloud Logging: "Its log:" names the trial's own log."""
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    proc = submit(emulator, tmp_path, "raise,1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "console.cloud.google.com" not in out, out[-3000:]
    uri = next(line.split("Its log: ", 1)[1] for line in out.splitlines() if "Its log: " in line)
    assert uri.startswith("gs://cli/runs/") and uri.endswith("/0/.vertex/trial.log"), uri
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
    log = gcs.read_bytes(gcs.client("local"), uri)
    assert log is not None and b"bad x" in log
