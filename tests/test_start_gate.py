"""Forked trials that tell the end of their start-up start at most one per CPU at a time:
the next waits until one says its start-up is over, or ends. Other commands start at once."""

import json
import os
import sys
import threading
import time

import pytest

from hydra_vertex_pipelines.pipeline_builder.local import forked
from hydra_vertex_pipelines.pipeline_builder.local.forked import ForkServer, StartCancelled

# Notes when it started, works 0.4 s at its "start-up", tells (unless told not to), then runs 0.4 s more.
TELLER = """
import json, sys, time
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"name": sys.argv[2], "at": time.time()}) + "\\n")
time.sleep(0.4)
if sys.argv[3] == "tell":
    sys.modules["hydra_vertex_pipelines.pipeline_builder.local.fork_server"].tell_started()
time.sleep(0.4)
"""


@pytest.fixture
def server(tmp_path, monkeypatch):
    (tmp_path / "teller.py").write_text(TELLER, encoding="utf-8")
    (tmp_path / "other.py").write_text(TELLER, encoding="utf-8")
    monkeypatch.setattr(forked, "cpu_count", lambda: 1)  # one place, whatever this machine has
    started = ForkServer(sys.executable, [], str(tmp_path), dict(os.environ), custom_jobs=False, tells_start=["teller"])
    yield started
    started.close()


def _spawn_all(server, tmp_path, commands):
    """Spawns each (module, name, tell) from a thread of its own, as the runner's task threads do."""
    procs = []

    def one(module, name, tell):
        argv = [sys.executable, "-m", module, str(tmp_path / "starts.jsonl"), name, tell]
        procs.append(server.spawn(argv, dict(os.environ), str(tmp_path), str(tmp_path / f"{name}.log")))

    threads = [threading.Thread(target=one, args=c) for c in commands]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    for p in procs:
        assert p.wait(timeout=30) == 0
    lines = (tmp_path / "starts.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["name"]: r["at"] for r in map(json.loads, lines)}


def test_one_start_up_at_a_time_per_cpu(server, tmp_path):
    at = _spawn_all(server, tmp_path, [("teller", "a", "tell"), ("teller", "b", "tell"), ("teller", "c", "tell")])
    first, second, third = sorted(at.values())
    assert second - first >= 0.35 and third - second >= 0.35  # each waited for the one before to tell
    assert third - first < 1.6  # and not for its end


def test_a_trial_that_ends_without_telling_frees_its_place(server, tmp_path):
    at = _spawn_all(server, tmp_path, [("teller", "quiet", "silent"), ("teller", "next", "tell")])
    assert at["next"] - at["quiet"] >= 0.7  # the quiet one's whole run: it never told


def test_other_commands_start_at_once(server, tmp_path):
    at = _spawn_all(server, tmp_path, [("teller", "a", "tell"), ("other", "b", "tell"), ("other", "c", "tell")])
    assert max(at.values()) - min(at.values()) < 0.35


def test_a_stop_while_waiting_starts_nothing(server, tmp_path):
    argv = [sys.executable, "-m", "teller", str(tmp_path / "starts.jsonl"), "a", "silent"]
    first = server.spawn(argv, dict(os.environ), str(tmp_path), str(tmp_path / "a.log"))
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(StartCancelled):
        server.spawn([*argv[:-2], "b", "tell"], dict(os.environ), str(tmp_path), str(tmp_path / "b.log"), stopping)
    assert first.wait(timeout=30) == 0
    assert [json.loads(x)["name"] for x in (tmp_path / "starts.jsonl").read_text(encoding="utf-8").splitlines()] == ["a"]
