"""Local mode stops cleanly: SIGTERM and a double Ctrl-C stop every process of the sweep,
a trial's leftover children die with it, and no temporary files are left."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import alive, read_json, wait_for

pytestmark = pytest.mark.slow  # local-mode sweeps in subprocesses, stopped by signals

APP = """
import os, signal, subprocess, sys, tempfile, time
from pathlib import Path

import hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    pids = Path(os.environ["PID_DIR"])
    parent = os.getppid()  # the trial's init (local mode's subreaper), whose parent started it
    starter = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1]
    (pids / f".trial-{os.getpid()}").write_text(f"{parent} {starter}")  # whole, then named: read whole
    os.replace(pids / f".trial-{os.getpid()}", pids / f"trial-{os.getpid()}")
    if cfg.x == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # its child inherits this
    if cfg.x in ("hang", "stubborn", "leave"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (pids / f"child-{child.pid}").write_text("")
    if cfg.x == "stubborn":  # still ignores SIGTERM, and notes that it came
        signal.signal(signal.SIGTERM, lambda *_: (pids / f"sigterm-{os.getpid()}").write_text(""))
    if cfg.x in ("hang", "stubborn"):
        time.sleep(600)
    if cfg.x == "tmp":
        tempfile.mkdtemp()
        tempfile.NamedTemporaryFile(delete=False).write(b"left behind")
    return {"file": __file__, "x": str(cfg.x)}


if __name__ == "__main__":
    main()
"""
CONFIG = """
defaults:
  - override hydra/launcher: vertex_pipelines
  - _self_

x: ok
hydra:
  launcher:
    mode: local
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    (folder / "conf").mkdir(parents=True)
    (folder / "app.py").write_text(APP)
    (folder / "conf" / "config.yaml").write_text(CONFIG)
    (tmp_path / "pids").mkdir()
    return folder


def start(app: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "app.py", "-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=app,
        env={**os.environ, "PID_DIR": str(tmp_path / "pids"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def recorded(tmp_path: Path) -> Dict[str, List[int]]:
    names = [p.name for p in (tmp_path / "pids").iterdir() if not p.name.startswith(".")]
    pids = {"trial": [], "child": [], "init": [], "server": [], "sigterm": []}
    for name in names:
        kind, pid = name.split("-")
        pids[kind].append(int(pid))
        if kind == "trial":
            init, starter = (tmp_path / "pids" / name).read_text().split()
            pids["init"].append(int(init))
            pids["server"].append(int(starter))  # forked: the fork server
    return pids


def all_gone(pids: List[int], within: float) -> None:
    wait_for(lambda: not any(alive(p) for p in pids), timeout=within, what="every process to end: processes were left behind")


def test_sigterm_stops_every_process_and_keeps_finished_results(app, tmp_path):
    proc = start(app, tmp_path, "x=ok,hang,hang", "hydra.launcher.max_parallel=3")
    sweep = tmp_path / "sweep"
    wait_for(lambda: len(recorded(tmp_path)["child"]) == 2 and (sweep / "0" / ".vertex" / "result.json").exists())
    pids = recorded(tmp_path)
    everything = pids["trial"] + pids["child"] + pids["init"] + pids["server"]
    assert len(set(pids["server"])) == 1 and all(alive(p) for p in pids["child"] + pids["server"])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    all_gone(everything, within=5)
    assert read_json(sweep / "0" / ".vertex" / "result.json")["return_value"]["x"] == "ok"


@pytest.mark.parametrize("fresh", ["false", "true"])
def test_a_killed_launcher_leaves_nothing_running(app, tmp_path, fresh):
    """SIGKILL gives the launcher no chance to stop its trials; they stop all the same."""
    proc = start(app, tmp_path, "x=hang", f"hydra.launcher.fresh_interpreters={fresh}")
    wait_for(lambda: len(recorded(tmp_path)["child"]) == 1)
    pids = recorded(tmp_path)
    assert all(alive(p) for p in pids["trial"] + pids["child"])
    proc.kill()
    proc.communicate(timeout=60)
    all_gone(pids["trial"] + pids["child"] + pids["init"] + pids["server"], within=5)


def test_a_second_ctrl_c_hurries_the_stop(app, tmp_path):
    proc = start(app, tmp_path, "x=ok,stubborn", "hydra.launcher.max_parallel=2")
    sweep = tmp_path / "sweep"
    wait_for(lambda: len(recorded(tmp_path)["child"]) == 1 and (sweep / "0" / ".vertex" / "result.json").exists())
    pids = recorded(tmp_path)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: recorded(tmp_path)["sigterm"], what="the first Ctrl-C to stop the trials")
    stopped = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    # The stubborn trial ignores SIGTERM: without the second Ctrl-C it would get SIGKILL
    # only after the 5 s grace period.
    assert time.monotonic() - stopped < 4, out
    assert proc.returncode != 0
    all_gone(pids["trial"] + pids["child"] + pids["init"] + pids["server"], within=3)
    assert read_json(sweep / "0" / ".vertex" / "result.json")["return_value"]["x"] == "ok"


@pytest.mark.parametrize("fresh", ["false", "true"])
def test_leftover_children_temporary_files_and_script_path(app, tmp_path, fresh):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = start(app, tmp_path, "x=ok,leave,tmp", f"hydra.launcher.fresh_interpreters={fresh}", TMPDIR=str(tmp))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    children = recorded(tmp_path)["child"]
    assert len(children) == 1
    all_gone(children, within=1)  # killed when its trial ended, as a container's processes are
    assert sorted(p.name for p in tmp.iterdir()) == [], "temporary files were left"
    returns = [read_json(tmp_path / "sweep" / str(n) / ".vertex" / "result.json")["return_value"] for n in range(3)]
    assert {r["file"] for r in returns} == {str(app / "app.py")}  # absolute, as `python app.py` gives


def test_the_fork_server_stops_its_children_when_the_runner_goes_away(tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.local.forked import ForkServer

    server = ForkServer(sys.executable, [], str(tmp_path), dict(os.environ), custom_jobs=False)
    child = server.spawn(
        [sys.executable, "-c", "import time; time.sleep(600)"], dict(os.environ), str(tmp_path), str(tmp_path / "log")
    )
    assert alive(child.pid)
    stopped = time.monotonic()
    server.helper.proc.stdin.close()  # what the runner's death looks like from the server
    server.helper.proc.wait(timeout=30)
    all_gone([child.pid], within=1)
    assert time.monotonic() - stopped < 3  # SIGTERM did it, not the SIGKILL after the grace period
