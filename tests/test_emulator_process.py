"""The emulator as a person starts it: `hydra-vertex-pipelines emulator` in its own
process, Cloud Storage on disk, the README's commands, restarts and signals."""

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pytest

from conftest import APPS, CLI, QUICKSTART, REPO, alive, read_json, wait_for

pytestmark = pytest.mark.slow  # starts the emulators' command line

FAULTS = APPS / "faults"
QUICKSTART_DIR = QUICKSTART.parent
JOBS = "/v1/projects/local/locations/us-central1/pipelineJobs"


class Emulator:
    """One `hydra-vertex-pipelines emulator --data-dir DIR` process on free ports."""

    def __init__(self, data_dir: Path, cwd: Path = REPO, ports: Tuple[int, int] = (0, 0), args: Sequence[str] = ()) -> None:
        self.lines: List[str] = []
        self.proc = subprocess.Popen(
            [CLI, "emulator", "--data-dir", str(data_dir), "--port", str(ports[0]), "--gcs-port", str(ports[1]), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        found = self.wait_for(r"Vertex AI emulator on (http://127\.0\.0\.1:\d+), Cloud Storage emulator on (http://127\.0\.0\.1:\d+)")
        self.api, self.gcs_url = found.groups()
        self.ports = (int(self.api.rsplit(":", 1)[1]), int(self.gcs_url.rsplit(":", 1)[1]))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> "re.Match[str]":
        deadline = time.time() + timeout
        while time.time() < deadline:
            ended = self.proc.poll() is not None
            time.sleep(0.05)  # lets the reader catch up with the last lines of an ended process
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if ended:
                break
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def faults_app_submit(self, bucket: str) -> List[str]:
        """The options of a submitted sweep of tests/apps/faults/app.py against this emulator,
        its trials run by the command entry, followed with a poll every 0.5 s, its run
        folders under gs://BUCKET/runs."""
        return [
            "-m",
            "hydra.launcher.mode=submit",
            f"hydra.launcher.api_endpoint={self.api}",
            "hydra.launcher.project=local",
            f"hydra.launcher.pipeline_root=gs://{bucket}/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.poll_interval=0.5",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
        ]

    def request(self, path: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        req = urllib.request.Request(self.api + path, data=data, headers=headers, method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=30) as reply:
            return json.loads(reply.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
        """Sends `sig` and returns how long the process took to end."""
        start = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return time.time() - start


@pytest.fixture
def start_emulator():
    started: List[Emulator] = []

    def start(data_dir: Path, cwd: Path = REPO) -> Emulator:
        started.append(Emulator(data_dir, cwd))
        return started[-1]

    yield start
    for emulator in started:
        emulator.stop(signal.SIGKILL)


def _quickstart_loss(lr: float) -> float:
    """The value the quickstart returns for `lr` with its config's other settings."""
    import runpy

    from hydra.core.singleton import Singleton

    state = Singleton.get_state()  # @hydra.main sets Hydra's version base: keep it from other tests
    try:
        train = runpy.run_path(str(QUICKSTART))["train"]
    finally:
        Singleton.set_state(state)
    return train(lr, 32, 5, 0)


def test_readme_flow_as_written(start_emulator, tmp_path, monkeypatch):
    data_dir = tmp_path / "vertex-emulator"
    emulator = start_emulator(data_dir, cwd=QUICKSTART_DIR)  # "Start it from your project's directory"
    sweep = tmp_path / "sweep"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
    launch = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=vertex_pipelines",
            f"hydra.launcher.api_endpoint={emulator.api}",
            "hydra.launcher.project=local",
            "hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
            "hydra.launcher.trial.image_uri=local",
            "lr=0.1,0.01",
            "hydra.launcher.poll_interval=1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=QUICKSTART_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launch.returncode == 0, launch.stdout + launch.stderr
    manifest = read_json(sweep / "manifest.json")
    job = emulator.request(f"/v1/{manifest['vertex']['resource_name']}")
    assert job["state"] == "PIPELINE_STATE_SUCCEEDED", json.dumps(job.get("jobDetail"), indent=1)
    assert {t["state"] for t in job["jobDetail"]["taskDetails"]} == {"SUCCEEDED"}
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    storage = gcs.client("local")
    written = {t["number"]: gcs.read_json(storage, f"{t['output_uri']}/.vertex/result.json") for t in manifest["trials"]}
    assert [written[n]["return_value"] for n in (0, 1)] == [_quickstart_loss(0.1), _quickstart_loss(0.01)]
    summary = read_json(sweep / "summary.json")
    assert [(r["status"], r["return_value"]) for r in summary["trials"]] == [
        ("COMPLETED", written[n]["return_value"]) for n in (0, 1)
    ]
    # Only bucket folders in the local view of the buckets.
    assert sorted(p.name for p in (data_dir / "gcs").iterdir()) == ["my-bucket"]


def test_a_store_left_among_the_buckets_is_moved_out_and_kept(start_emulator, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    first = start_emulator(data_dir)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", first.gcs_url)
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    gcs.ensure_bucket(gcs.client("local"), "gs://kept")
    gcs.write_bytes(gcs.client("local"), "gs://kept/a.txt", b"a")
    assert first.stop() < 10 and first.proc.returncode == 0
    (data_dir / "storage" / ".cloudstorage").rename(data_dir / "gcs" / ".cloudstorage")  # an older emulator's layout
    second = start_emulator(data_dir)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", second.gcs_url)
    assert gcs.read_bytes(gcs.client("local"), "gs://kept/a.txt") == b"a"
    assert not (data_dir / "gcs" / ".cloudstorage").exists()


@pytest.fixture(scope="module")
def one_done_one_hanging(tmp_path_factory):
    """A compiled pipeline: trial 0 returns 1.0, trial 1 writes its pid into PID_DIR and hangs."""
    root = tmp_path_factory.mktemp("restart")
    pid_dir = root / "pids"
    from conftest import load_pipeline, run_app

    run_app(
        FAULTS / "app.py",
        [
            "-m",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://restart/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
            f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",
            f"hydra.sweep.dir={root / 'sweep'}",
            "x=1,hang",
        ],
    )
    return {"spec": load_pipeline(root / "sweep" / "pipeline.yaml"), "pids": pid_dir}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_restart_keeps_jobs_and_ends_the_interrupted_one_truthfully(
    start_emulator, one_done_one_hanging, tmp_path, monkeypatch, sig
):
    pid_dir = one_done_one_hanging["pids"]
    pid_dir.mkdir(exist_ok=True)
    for old in pid_dir.iterdir():
        old.unlink()
    data_dir = tmp_path / "data"
    first = start_emulator(data_dir)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", first.gcs_url)
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    gcs.ensure_bucket(gcs.client("local"), "gs://restart")
    body = {"displayName": "restart", "pipelineSpec": one_done_one_hanging["spec"], "runtimeConfig": {}}
    created = first.request(f"{JOBS}?pipelineJobId=job-1", body)
    assert created["state"] == "PIPELINE_STATE_PENDING"

    def trial_states():
        return {t["taskName"]: t["state"] for t in first.request(f"{JOBS}/job-1").get("jobDetail", {}).get("taskDetails", [])}

    wait_for(lambda: any(pid_dir.iterdir()), timeout=60, what="the hanging trial")
    wait_for(lambda: trial_states().get("custom-training-job") == "SUCCEEDED", timeout=60, what="trial 0")
    assert first.request(f"{JOBS}/job-1")["state"] == "PIPELINE_STATE_RUNNING"
    pid = int(next(pid_dir.iterdir()).name)
    took = first.stop(sig)
    if sig == signal.SIGKILL:  # the emulator could not stop it: its reaper does, as a container's end would
        wait_for(lambda: not alive(pid), timeout=10, what="the reaper to stop the trial")
    else:
        assert first.proc.returncode == 0 and took < 10, (took, "".join(first.lines))
        assert not alive(pid)  # the trial was stopped with the emulator
        assert "stopped" in first.lines[-1]

    second = start_emulator(data_dir)
    job = second.request(f"{JOBS}/job-1")
    assert second.request(JOBS)["pipelineJobs"][0]["name"] == job["name"] == created["name"]
    assert job["state"] == "PIPELINE_STATE_FAILED"
    assert "emulator stopped while this job ran" in job["error"]["message"]
    tasks = {t["taskName"]: t for t in job["jobDetail"]["taskDetails"]}
    assert tasks["custom-training-job"]["state"] == "SUCCEEDED"
    assert tasks["custom-training-job-2"]["state"] == "FAILED"
    assert "emulator stopped while this task ran" in tasks["custom-training-job-2"]["error"]["message"]
    assert all(t["state"] not in ("PENDING", "RUNNING") for t in tasks.values())
    # Cloud Storage kept what the finished trial wrote, on disk.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", second.gcs_url)
    task = one_done_one_hanging["spec"]["root"]["dag"]["tasks"]["custom-training-job"]
    base = task["inputs"]["parameters"]["base_output_directory"]
    assert gcs.read_json(gcs.client("local"), base["runtimeValue"]["constant"] + "/.vertex/result.json")["return_value"] == 1.0
    # The same id is the same job still: a retried create is not run twice.
    with pytest.raises(urllib.error.HTTPError) as again:
        second.request(f"{JOBS}?pipelineJobId=job-1", body)
    assert again.value.code == 409
    assert second.stop() < 10 and second.proc.returncode == 0
    third = start_emulator(data_dir)
    assert third.request(f"{JOBS}/job-1") == job  # unchanged by another restart


def test_a_cancel_cut_short_by_a_stop_ends_cancelled(tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.emulator.job_store import JobStore

    store = JobStore(tmp_path / "runs")
    resource = {"name": "projects/p/locations/l/pipelineJobs/j", "state": "PIPELINE_STATE_CANCELLING", "createTime": "t"}
    tasks = [
        {"taskName": "done", "state": "SUCCEEDED", "startTime": "a", "endTime": "b"},
        {"taskName": "cancelled", "state": "CANCELLED", "startTime": "a", "endTime": "b"},
        {"taskName": "waiting", "state": "PENDING"},
    ]
    store.save("j", resource, None)
    store.save_tasks("j", tasks)
    store.task_changed("j", {"taskName": "waiting", "state": "RUNNING", "startTime": "c"})
    with (store.folder("j") / "tasks.jsonl").open("a") as log:
        log.write('{"taskName": "waiting", "sta')  # the line being written when a kill came
    [job] = store.load()
    assert job.resource["state"] == "PIPELINE_STATE_CANCELLED"
    assert {t["taskName"]: t["state"] for t in job.tasks} == {"done": "SUCCEEDED", "cancelled": "CANCELLED", "waiting": "FAILED"}
    assert job.tasks[2]["error"]["message"] == "the emulator stopped while this task ran"
    assert store.load() == [job]  # saved ended: a second restart finds the same


def test_experiments_survive_a_restart(tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.emulator.metadata import MetadataService

    store = "projects/p/locations/l/metadataStores/default"
    first = MetadataService(tmp_path / "metadata.json")
    first.create(store, "study", {"schemaTitle": "system.Experiment"})
    first.create(store, "run-1", {"schemaTitle": "system.PipelineRun"})
    first.handle("POST", f"/v1/{store}/contexts/study:addContextChildren", {}, {"childContexts": [f"{store}/contexts/run-1"]})
    again = MetadataService(tmp_path / "metadata.json")
    assert again.children[f"{store}/contexts/study"] == [f"{store}/contexts/run-1"]
    assert again.contexts[f"{store}/contexts/run-1"]["parentContexts"] == [f"{store}/contexts/study"]
