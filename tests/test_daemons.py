"""Nothing a trial starts outlives it: a daemon it double-forks into a session of its own
(as `nohup` wrappers, servers and data loaders do) is stopped when the trial ends, when the
sweep is stopped with Ctrl-C, and when the launcher or the emulator is killed with SIGKILL."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from conftest import alive, wait_for
from test_emulator_process import Emulator

pytestmark = [
    pytest.mark.slow,  # sweeps in subprocesses, the emulator's command line
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux's"),
]

# Starts a daemon as `daemon(1)` does: fork, setsid, fork again, the middle process exits;
# the daemon writes its pid to DAEMONS/<name> and sleeps. Returns once that file is there.
SPAWN = """
import os, sys, time

def spawn_daemon(folder, name):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            (folder / (name + ".tmp")).write_text(str(os.getpid()))
            os.rename(folder / (name + ".tmp"), folder / name)
            time.sleep(600)
        os._exit(0)
    while not (folder / name).exists():
        time.sleep(0.01)
"""

APP = (
    SPAWN
    + """
from pathlib import Path
import hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    folder = Path(os.environ["DAEMONS"])
    spawn_daemon(folder, f"{cfg.x}-{os.getpid()}")
    if cfg.x == "hang":
        time.sleep(600)
    return str(cfg.x)


if __name__ == "__main__":
    main()
"""
)
CONFIG = """
defaults:
  - override hydra/launcher: vertex_pipelines
  - _self_

x: ok
hydra:
  launcher:
    mode: local
    max_parallel: 2
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    (folder / "conf").mkdir(parents=True)
    (folder / "app.py").write_text(APP)
    (folder / "conf" / "config.yaml").write_text(CONFIG)
    return folder


@pytest.fixture
def start(app: Path, tmp_path: Path):
    """Starts a sweep of the app; what a failed test left running is stopped afterwards."""
    started: List[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        started.append(
            subprocess.Popen(
                [sys.executable, "app.py", "-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                cwd=app,
                env={**os.environ, "DAEMONS": str(tmp_path / "daemons")},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)


def daemons(tmp_path: Path, kind: str) -> List[int]:
    folder = tmp_path / "daemons"
    # A daemon's pid file is written as NAME.tmp, then renamed: only the renamed ones are whole.
    return [
        int((folder / name).read_text())
        for name in os.listdir(folder)
        if name.startswith(kind + "-") and not name.endswith(".tmp")
    ]


def gone(pids: List[int], within: float, what: str) -> None:
    wait_for(lambda: not any(alive(p) for p in pids), timeout=within, what=f"{what}: daemons were left running")


@pytest.fixture
def cleanup(tmp_path: Path):
    (tmp_path / "daemons").mkdir(exist_ok=True)
    yield
    for kind in ("ok", "hang", "cancelled"):  # what a failed test left
        for pid in daemons(tmp_path, kind):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("fresh", "stop"), [("false", signal.SIGINT), ("true", signal.SIGTERM)])
def test_a_trials_daemon_ends_with_it_and_a_stop_stops_the_rest(cleanup, start, tmp_path, fresh, stop):
    """One sweep: the finished trial's daemon is gone while the sweep still runs, the
    running trial's is alive; Ctrl-C (or SIGTERM) stops the running trial and its daemon."""
    proc = start("x=ok,hang", f"hydra.launcher.fresh_interpreters={fresh}")
    wait_for(lambda: daemons(tmp_path, "ok") and daemons(tmp_path, "hang"), what="both trials' daemons to start")
    gone(daemons(tmp_path, "ok"), within=10, what="the finished trial's daemon to end with it")
    hanging = daemons(tmp_path, "hang")
    assert all(alive(p) for p in hanging) and proc.poll() is None
    proc.send_signal(stop)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    gone(hanging, within=10, what=f"{stop.name} to stop the running trial's daemon")


def test_a_sweep_that_ends_leaves_no_daemon(cleanup, start, tmp_path):
    proc = start("x=ok,ok")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    started = daemons(tmp_path, "ok")
    assert len(started) == 2
    gone(started, within=5, what="the sweep's end")


@pytest.mark.parametrize("fresh", ["false", "true"])
def test_a_killed_launcher_leaves_no_daemon(cleanup, start, tmp_path, fresh):
    proc = start("x=hang", f"hydra.launcher.fresh_interpreters={fresh}")
    wait_for(lambda: daemons(tmp_path, "hang"), what="the trial's daemon to start")
    started = daemons(tmp_path, "hang")
    assert all(alive(p) for p in started)
    proc.kill()
    proc.communicate(timeout=60)
    gone(started, within=8, what="the reaper to stop the killed launcher's trial")


def custom_job(folder: Path, name: str, hang: bool) -> dict:
    code = SPAWN + f"\nfrom pathlib import Path\nspawn_daemon(Path({str(folder)!r}), {name!r})\n"
    if hang:
        code += "time.sleep(600)\n"
    spec = {"imageUri": "img", "command": ["python", "-c", code]}
    pool = {"replicaCount": "1", "machineSpec": {"machineType": "n1-standard-4"}, "containerSpec": spec}
    return {"displayName": name, "jobSpec": {"workerPoolSpecs": [pool]}}


def test_the_emulators_custom_jobs_leave_no_daemon(tmp_path, cleanup):
    """A CustomJob's daemon ends with its job, and with a cancelled job; a killed
    emulator's running job's too."""
    emulator = Emulator(tmp_path / "data")
    try:
        jobs = "/v1/projects/local/locations/us-central1/customJobs"
        done = emulator.request(jobs, custom_job(tmp_path / "daemons", "ok-1", hang=False))["name"]
        emulator.request(jobs, custom_job(tmp_path / "daemons", "hang-1", hang=True))
        cancelled = emulator.request(jobs, custom_job(tmp_path / "daemons", "cancelled-1", hang=True))["name"]
        wait_for(lambda: emulator.request(f"/v1/{done}")["state"] == "JOB_STATE_SUCCEEDED", what="the first job to end")
        gone(daemons(tmp_path, "ok"), within=3, what="the ended job's daemon to end with it")
        wait_for(lambda: daemons(tmp_path, "hang") and daemons(tmp_path, "cancelled"), what="the running jobs' daemons")
        hanging = daemons(tmp_path, "hang")
        assert all(alive(p) for p in hanging + daemons(tmp_path, "cancelled"))
        emulator.request(f"/v1/{cancelled}:cancel", {})
        gone(daemons(tmp_path, "cancelled"), within=8, what="the cancelled job's daemon to end with it")
        assert all(alive(p) for p in hanging)
    finally:
        emulator.stop(signal.SIGKILL)
    gone(hanging, within=8, what="the reaper to stop the killed emulator's job")
