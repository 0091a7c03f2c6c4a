"""What a followed sweep asks of Vertex and Cloud Storage, counted in the emulator's access
log: the launcher's requests grow with polls and failed trials, not with trials."""

import signal
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import APPS, run_app
from hydra_vertex_pipelines.pipeline_builder.emulator.access_log import Sender, Service, read_access_log
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # the emulator's command line, three sweeps in subprocesses

FAULTS = APPS / "faults"
POLL = ("GET", "get")  # a poll: GetPipelineJob


def launcher_requests(entries: List[Dict[str, Any]]) -> Counter:
    """The launcher's requests by (service, method, call), polls included."""
    counts: Counter = Counter()
    for e in entries:
        if e["sender"] == Sender.CLIENT.value:
            counts[(e["service"], e["method"], e["call"])] += 1
    return counts


def without_polls(counts: Counter) -> Counter:
    return Counter({k: n for k, n in counts.items() if (k[0], k[1], k[2]) != (Service.VERTEX.value, *POLL)})


def access_log(emulator: Emulator) -> Path:
    """The access log the emulator names when it starts."""
    return Path(emulator.wait_for(r"requests logged in (\S+)$").group(1))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = Emulator(tmp_path_factory.mktemp("counts") / "data")
    yield started
    started.stop(signal.SIGTERM)


def sweep(emulator: Emulator, sweep_dir: Path, values: str) -> List[Dict[str, Any]]:
    """Runs a followed sweep of the faults app over `values`; the requests logged meanwhile."""
    log = access_log(emulator)
    before = len(read_access_log(log))
    proc = run_app(
        FAULTS / "app.py",
        [
            *emulator.faults_app_submit("counts"),
            # The live report reads each finished trial's record once, by design (its cost per
            # refresh is counted in test_live_report.py): off, to count following and recovery alone.
            "hydra.launcher.live_report=false",
            f"hydra.sweep.dir={sweep_dir}",
            f"x={values}",
        ],
        check=False,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # each sweep has a failed trial
    return read_access_log(log)[before:]


@pytest.fixture(scope="module")
def runs(emulator, tmp_path_factory) -> Dict[str, List[Dict[str, Any]]]:
    """Three sweeps: 3 trials and 9 trials with one failed trial (it raises), and 9 trials
    with three failed trials (one raises, two die without a record)."""
    folder = tmp_path_factory.mktemp("sweeps")
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    with pytest.MonkeyPatch.context() as env:  # the bucket, as an earlier sweep leaves it: the sweeps' own costs alone
        env.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
        gcs.ensure_bucket(gcs.client("local"), "gs://counts")
    return {
        "3 trials, 1 failed": sweep(emulator, folder / "a", "raise,1,2"),
        "9 trials, 1 failed": sweep(emulator, folder / "b", "raise,1,2,3,4,5,6,7,8"),
        "9 trials, 3 failed": sweep(emulator, folder / "c", "raise,exit3,sigkill,3,4,5,6,7,8"),
    }


def test_the_access_log_tells_the_launcher_from_gcpc_and_the_emulator(runs):
    entries = runs["9 trials, 1 failed"]
    by_sender = Counter((e["sender"], e["service"], e["call"]) for e in entries)
    # gcpc's launcher creates each trial's CustomJob and watches it: its requests grow with trials.
    assert by_sender[(Sender.GCPC_LAUNCHER.value, Service.VERTEX.value, "custom_job_create")] == 9
    assert by_sender[(Sender.GCPC_LAUNCHER.value, Service.VERTEX.value, "custom_job_get")] >= 9
    assert not any(e["sender"] == Sender.GCPC_LAUNCHER.value and e["service"] == Service.STORAGE.value for e in entries)
    # The emulator's own copies around each task are its own, never counted as the launcher's.
    assert any(e["sender"] == Sender.EMULATOR.value and e["call"] == "object_write" for e in entries)
    assert not any(e["sender"] == Sender.EMULATOR.value and e["service"] == Service.VERTEX.value for e in entries)
    launcher = launcher_requests(entries)
    assert launcher[(Service.VERTEX.value, "POST", "create")] == 1 and launcher[(Service.VERTEX.value, *POLL)] >= 1
    assert all(isinstance(e["status"], int) and e["time"].endswith("Z") for e in entries)


def test_the_launchers_requests_grow_with_polls_and_failed_trials_not_with_trials(runs):
    small, large, failed = (without_polls(launcher_requests(runs[k])) for k in runs)
    # Three times the trials, as many failed ones: the same requests, poll for poll (the
    # sweeps ran for different times, so with different numbers of polls).
    assert large == small, (small, large)
    # Two more failed trials, both without a record: nothing fewer; on Vertex one GET of each
    # one's CustomJob (why it failed); on Cloud Storage at most two requests each (its
    # result.json looked for) and the summary and report written back once, with the kinds
    # the collector could not tell.
    assert sum((large - failed).values()) == 0, (large, failed)
    grown = failed - large
    assert {k: n for k, n in grown.items() if k[0] == Service.VERTEX.value} == {
        (Service.VERTEX.value, "GET", "custom_job_get"): 2
    }
    storage = Counter({k: n for k, n in grown.items() if k[0] == Service.STORAGE.value})
    assert storage[(Service.STORAGE.value, "POST", "object_write")] == 2 and sum(storage.values()) <= 2 * 2 + 2, storage
