"""The emulator, started from its command line, bounds what it reads: an oversize body is
refused from its Content-Length before it is read, a body that stops arriving times out,
deep nesting and bad lengths are answered 400, and display names over 128 characters are
refused as Vertex refuses them; the SDK's own requests still run."""

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from conftest import APPS, load_pipeline, run_app, wait_for
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # starts the emulator's command line

FAULTS = APPS / "faults"
PARENT = "/v1/projects/local/locations/us-central1"
BODY_TIMEOUT = 2.0
WORKER_POOLS = [{"replicaCount": "1", "machineSpec": {"machineType": "n1-standard-4"}, "containerSpec": {"imageUri": "local"}}]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One `hydra-vertex-pipelines emulator` process for every case, with a short body timeout."""
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    started = Emulator(data_dir, args=["--body-timeout", str(BODY_TIMEOUT)])
    started.data_dir = data_dir
    yield started
    started.stop(signal.SIGTERM)


def exchange(port: int, head: str, body: bytes = b"", timeout: float = 10.0) -> Tuple[int, Dict[str, Any], float]:
    """Sends `head` (request line and headers, Host added) and `body` as they are, and
    returns the answer's status, JSON body and how long it took."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        raw.sendall(f"{head}\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() + body)
        reply = raw.makefile("rb")
        status = int(reply.readline().split()[1])
        length = 0
        while (line := reply.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, json.loads(reply.read(length)), time.monotonic() - start


def post(port: int, path: str, data: bytes, **headers: str) -> Tuple[int, Dict[str, Any], float]:
    fields = {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}
    head = "\r\n".join([f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items() if v is not None)])
    return exchange(port, head, data)


def peak_rss_kb(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def test_an_oversize_body_is_refused_unread(emulator):
    port, pid = emulator.ports[0], emulator.proc.pid
    before = peak_rss_kb(pid)
    length = 300 * 1024 * 1024  # a 300 MB displayName, as a client would announce it
    head = f"POST {PARENT}/pipelineJobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {length}"
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(f"{head}\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())  # the headers only: the answer comes first
        reply = raw.makefile("rb")
        assert reply.readline().split()[1] == b"413"
        assert time.monotonic() - start < BODY_TIMEOUT  # answered from the headers, not after waiting for the body
        while reply.readline().strip():
            pass
        error = json.loads(reply.read())["error"]
        assert (error["code"], error["status"]) == (413, "INVALID_ARGUMENT")
        assert f"{length} bytes" in error["message"] and str(32 * 1024 * 1024) in error["message"]
    # A client that sends its whole body before reading (as urllib and requests do) gets the answer too.
    body = json.dumps({"displayName": "x" * (40 * 1024 * 1024)}).encode()
    request = urllib.request.Request(
        f"{emulator.api}{PARENT}/pipelineJobs", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413 and json.loads(refused.value.read())["error"]["code"] == 413
    assert peak_rss_kb(pid) - before < 8 * 1024  # a few MB more at its peak (its threads): neither body was kept
    assert not list((emulator.data_dir / "runs").iterdir())


@pytest.mark.parametrize(
    "length, code",
    [("-5", 400), ("abc", 400), ("1_0", 400), ("2, 2", 400), (None, 411)],
)
def test_bad_lengths_are_refused(emulator, length, code):
    status, reply, _ = post(emulator.ports[0], f"{PARENT}/pipelineJobs", b"{}", **{"Content-Length": length})
    assert (status, reply["error"]["code"]) == (code, code), reply


def test_repeated_lengths_and_chunked_bodies_are_refused(emulator):
    port = emulator.ports[0]
    head = f"POST {PARENT}/pipelineJobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2"
    assert exchange(port, head, b"{}")[0] == 400
    head = f"POST {PARENT}/pipelineJobs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    assert exchange(port, head, b"2\r\n{}\r\n0\r\n\r\n")[0] == 411


def test_a_body_that_stops_arriving_times_out(emulator):
    head = f"POST {PARENT}/pipelineJobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000"
    status, reply, took = exchange(emulator.ports[0], head, b'{"displayN')
    assert status == 400 and BODY_TIMEOUT <= took < BODY_TIMEOUT + 5
    assert reply["error"]["message"] == f"the body did not arrive within {BODY_TIMEOUT:g} s: 10 of its 1000 bytes came"


@pytest.mark.parametrize("depth", [200_000, 150])
def test_deep_nesting_is_refused(emulator, depth):
    nested = "[" * depth + "]" * depth
    data = f'{{"displayName": "deep", "runtimeConfig": {{"parameterValues": {{"x": {nested}}}}}}}'.encode()
    status, reply, _ = post(emulator.ports[0], f"{PARENT}/pipelineJobs", data)
    assert status == 400
    assert reply["error"]["message"] == (
        "Invalid JSON payload received. Nesting too deep: more than 100 levels of objects and arrays."
    )
    status, reply, _ = post(emulator.ports[0], f"{PARENT}/pipelineJobs", b"{not json")
    assert status == 400 and reply["error"]["message"].startswith("Invalid JSON payload received. Expecting")


@pytest.mark.parametrize(
    "collection, body",
    [
        ("pipelineJobs", {"pipelineSpec": {}}),
        ("customJobs", {"jobSpec": {"workerPoolSpecs": WORKER_POOLS}}),
    ],
)
def test_display_names_over_128_characters_are_refused(emulator, collection, body):
    data = json.dumps({"displayName": "n" * 129, **body}).encode()
    status, reply, _ = post(emulator.ports[0], f"{PARENT}/{collection}", data)
    assert status == 400, reply
    kind = {"pipelineJobs": "PipelineJob", "customJobs": "CustomJob"}[collection]
    assert reply["error"] == {
        "code": 400,
        "status": "INVALID_ARGUMENT",
        "message": f"{kind}.display_name: Display name needs to be less than 128 characters (it has 129).",
    }


def test_the_sdks_requests_still_run(emulator, tmp_path, monkeypatch):
    """A 128-character display name is Vertex's longest: the SDK submits a pipeline with
    it and it runs; the JobService client's 129-character CustomJob raises the SDK's
    BadRequest with the emulator's message."""
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform, aiplatform_v1
    from google.cloud.aiplatform.utils import resource_manager_utils

    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
    storage = gcs.client("local")
    gcs.ensure_bucket(storage, "gs://limits")
    bucket = storage.get_bucket("limits")
    # No Cloud Resource Manager here: the SDK's check that the bucket is the project's gets the bucket's number.
    monkeypatch.setattr(resource_manager_utils, "get_project_number", lambda *args, **kwargs: str(bucket.project_number))
    run_app(
        FAULTS / "app.py",
        [
            "-m",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://limits/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "x=1",
        ],
    )
    assert load_pipeline(tmp_path / "sweep" / "pipeline.yaml")  # compiled
    aiplatform.init(
        project="local",
        location="us-central1",
        api_endpoint=emulator.api,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    job = aiplatform.PipelineJob(
        display_name="p" * 128,
        template_path=str(tmp_path / "sweep" / "pipeline.yaml"),
        pipeline_root="gs://limits/runs",
        enable_caching=False,
    )
    job.submit()
    wait_for(lambda: job.state.name in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED"), timeout=120, what="the run's end")
    assert job.state.name == "PIPELINE_STATE_SUCCEEDED" and job.display_name == "p" * 128
    client = aiplatform_v1.JobServiceClient(
        client_options={"api_endpoint": emulator.api}, transport="rest", credentials=AnonymousCredentials()
    )
    spec = {
        "worker_pool_specs": [
            {
                "replica_count": 1,
                "machine_spec": {"machine_type": "n1-standard-4"},
                "container_spec": {"image_uri": "local", "command": ["true"]},
            }
        ]
    }
    with pytest.raises(exceptions.BadRequest, match="Display name needs to be less than 128 characters"):
        client.create_custom_job(parent=PARENT[4:], custom_job={"display_name": "c" * 129, "job_spec": spec})
    created = client.create_custom_job(parent=PARENT[4:], custom_job={"display_name": "c" * 128, "job_spec": spec})
    assert created.display_name == "c" * 128
