"""Following a submitted run through an outage: keep trying, then stop with the commands to
re-attach, never a traceback; the run itself is not touched."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import APPS, REPO, read_json, wait_for

pytestmark = pytest.mark.slow  # starts the emulators' command line

FAULTS = APPS / "faults" / "app.py"


def follow_a_hanging_trial(api: str, gcs_url: str, sweep: Path, pid_dir: Path, reconnect_timeout: float) -> subprocess.Popen:
    """A submitted one-trial sweep, followed, whose trial hangs once it wrote its pid."""
    pid_dir.mkdir()
    return subprocess.Popen(
        [
            sys.executable, str(FAULTS), "-m", "x=hang", f"hydra.sweep.dir={sweep}",
            "hydra.launcher.mode=submit", f"hydra.launcher.api_endpoint={api}",
            "hydra.launcher.project=local", "hydra.launcher.pipeline_root=gs://sweeps/outage",
            "hydra.launcher.trial.image_uri=local", "hydra.launcher.poll_interval=0.2",
            f"hydra.launcher.reconnect_timeout={reconnect_timeout}", f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",
        ],
        cwd=REPO, env={**os.environ, "STORAGE_EMULATOR_HOST": gcs_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_an_outage_longer_than_reconnect_timeout_ends_with_the_reattach_hint(emulators, tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.emulator.server import VertexEmulator

    vertex = VertexEmulator(tmp_path / "vertex", workdir=REPO)  # its own, to take it down
    port = vertex.start()
    sweep, pid_dir = tmp_path / "sweep", tmp_path / "pids"
    proc = follow_a_hanging_trial(f"http://127.0.0.1:{port}", emulators["gcs_url"], sweep, pid_dir, reconnect_timeout=2)
    try:
        wait_for(lambda: any(pid_dir.iterdir()))
        started = time.time()
        vertex.stop()  # the API goes away while the launcher follows
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Vertex AI cannot be reached" in out and "trying again for up to 2 s" in out
    assert re.search(r"Stopped following: no answer from Vertex AI for \d+ s: \w*Connection", out), out
    assert re.search(rf"follow it again:  \S*hydra-vertex-pipelines status {re.escape(str(sweep))} --wait", out), out
    assert "Traceback" not in out and "RetryError" not in out, out
    assert time.time() - started < 60
    assert read_json(sweep / "manifest.json")["vertex"]["resource_name"].endswith(read_json(sweep / "manifest.json")["run_id"])


def test_an_outage_shorter_than_reconnect_timeout_is_followed_through(tmp_path):
    """The emulator goes down while the launcher follows, and comes back on the same data
    dir and ports: the launcher keeps trying, then follows the run to its truthful end."""
    from test_emulator_process import Emulator

    data_dir = tmp_path / "vertex"
    first = Emulator(data_dir)
    sweep, pid_dir = tmp_path / "sweep", tmp_path / "pids"
    proc = follow_a_hanging_trial(first.api, first.gcs_url, sweep, pid_dir, reconnect_timeout=120)
    second = None
    try:
        wait_for(lambda: any(pid_dir.iterdir()))
        first.stop(signal.SIGTERM)  # the run ends FAILED: "the emulator stopped while this job ran"
        time.sleep(2)
        second = Emulator(data_dir, ports=first.ports)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        for emulator in (first, second):
            if emulator is not None:
                emulator.stop(signal.SIGKILL)
    assert "Stopped following" not in out, out  # a GET's own retries (up to 30 s) rode out the gap
    assert re.search(r"PipelineJob \S+ of run \S+ ended: PIPELINE_STATE_(FAILED|CANCELLED)", out), out
    assert proc.returncode == 1 and "Trial 0 (x=hang) failed" in out, out
    assert "Traceback" not in out
