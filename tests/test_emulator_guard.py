"""The emulators answer only the client libraries, never a web page: a request that is not
JSON, names another host (DNS rebinding) or comes from a page is refused before anything
runs."""

import http.client
import json
import socket

import pytest

from conftest import APPS, REPO, load_pipeline, run_app, wait_for

pytestmark = pytest.mark.slow  # starts the emulators

FAULTS = APPS / "faults"
JOBS = "/v1/projects/local/locations/us-central1/pipelineJobs"


@pytest.fixture(scope="module")
def hanging_pipeline(tmp_path_factory):
    """A compiled pipeline whose one trial writes its pid into PID_DIR, then hangs."""
    root = tmp_path_factory.mktemp("guard")
    pid_dir = root / "pids"
    pid_dir.mkdir()
    run_app(
        FAULTS / "app.py",
        [
            "-m",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://guard/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
            f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",
            f"hydra.sweep.dir={root / 'sweep'}",
            "x=hang",
        ],
    )
    return {"spec": load_pipeline(root / "sweep" / "pipeline.yaml"), "pids": pid_dir}


@pytest.fixture
def vertex(emulators, tmp_path):
    """A Vertex emulator of its own (storage: the session's Cloud Storage emulator)."""
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
    from hydra_vertex_pipelines.pipeline_builder.emulator.server import VertexEmulator

    gcs.ensure_bucket(gcs.client("local"), "gs://guard")
    emulator = VertexEmulator(tmp_path / "data", workdir=REPO)
    port = emulator.start()
    yield emulator, port
    emulator.stop()


def send(port, method, path, body=None, **headers):
    """One request with exactly these headers (Host included when given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = None if body is None else json.dumps(body).encode()
    conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name.replace("_", "-"), value)
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    reply = conn.getresponse()
    answer = reply.status, json.loads(reply.read() or b"null")
    conn.close()
    return answer


REFUSED = [
    (415, {"Content-Type": "text/plain"}),  # what a cross-site <form> or no-cors fetch can send
    (415, {"Content-Type": "application/x-www-form-urlencoded"}),
    (415, {}),
    (403, {"Host": "attacker.example:{port}", "Content-Type": "application/json"}),  # DNS rebinding
    (403, {"Host": "127.0.0.1:1", "Content-Type": "application/json"}),
    (403, {"Content-Type": "application/json", "Origin": "http://attacker.example"}),
    (403, {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}),
]


def test_only_the_clients_requests_run_anything(vertex, hanging_pipeline):
    emulator, port = vertex
    body = {"displayName": "guard", "pipelineSpec": hanging_pipeline["spec"], "runtimeConfig": {}}
    for i, (code, headers) in enumerate(REFUSED):
        headers = {k: v.format(port=port) for k, v in headers.items()}
        status, reply = send(port, "POST", f"{JOBS}?pipelineJobId=refused-{i}", body, **headers)
        assert (status, reply["error"]["code"]) == (code, code), (headers, reply)
    # No Host at all (HTTP/1.0): refused too.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        data = json.dumps(body).encode()
        raw.sendall(
            f"POST {JOBS} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
        )
        assert raw.makefile("rb").readline().split()[1] == b"403"
    # A job is created before its answer is sent, and only a job starts processes.
    assert emulator.runs == {} and list(emulator.store.runs.iterdir()) == []  # no job created
    assert list(hanging_pipeline["pids"].iterdir()) == []  # no process started
    # Each loopback name of its own address is its own; the same body as JSON runs.
    for host in ("127.0.0.1", "localhost", "[::1]", "LOCALHOST"):
        assert send(port, "GET", JOBS, Host=f"{host}:{port}")[0] == 200
    status, reply = send(
        port,
        "POST",
        f"{JOBS}?pipelineJobId=accepted",
        body,
        Host=f"localhost:{port}",
        Content_Type="application/json; charset=utf-8",
    )
    assert status == 200, reply
    wait_for(lambda: list(hanging_pipeline["pids"].iterdir()), timeout=60, what=lambda: emulator.runs["accepted"].view())
    assert list(emulator.runs) == ["accepted"] and len(list(hanging_pipeline["pids"].iterdir())) == 1  # its trial only
    # A cross-site cancel is refused as well: the run goes on.
    assert send(port, "POST", f"{JOBS}/accepted:cancel", {}, Content_Type="text/plain")[0] == 415
    assert emulator.runs["accepted"].view()["state"] == "PIPELINE_STATE_RUNNING"


def test_bad_job_ids_and_bodies_are_refused(vertex):
    emulator, port = vertex
    for job_id in ("..", "a/b", "UPPER", "-x", "x" * 128):
        status, _ = send(port, "POST", f"{JOBS}?pipelineJobId={job_id}", {}, Content_Type="application/json")
        assert status == 400, job_id
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", JOBS, b"{not json", {"Content-Type": "application/json"})
    assert conn.getresponse().status == 400
    conn.close()
    assert emulator.runs == {}


def test_storage_emulator_refuses_other_hosts_and_pages(tmp_path, monkeypatch):
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
    from hydra_vertex_pipelines.pipeline_builder.emulator.storage import StorageServer

    server = StorageServer(tmp_path / "storage")
    url = server.start()
    port = int(url.rsplit(":", 1)[1])
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        storage = gcs.client("local")
        gcs.ensure_bucket(storage, "gs://b")
        gcs.write_bytes(storage, "gs://b/job.pkl", b"the real job")  # the client library is served
        upload = "/upload/storage/v1/b/b/o?uploadType=media&name=job.pkl"
        for headers in (
            {"Host": f"attacker.example:{port}"},
            {"Origin": "http://attacker.example"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            status, _ = send(port, "POST", upload, "replaced", Content_Type="text/plain", **headers)
            assert status == 403, headers
        assert gcs.read_bytes(storage, "gs://b/job.pkl") == b"the real job"
        assert not (tmp_path / "storage" / "b").exists()  # its own files stay in its folder
    finally:
        server.stop()


def test_storage_emulator_reads_of_absent_objects_log_no_error(tmp_path, monkeypatch, caplog):
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
    from hydra_vertex_pipelines.pipeline_builder.emulator.storage import StorageServer

    server = StorageServer(tmp_path / "storage")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.start())
    try:
        storage = gcs.client("local")
        gcs.ensure_bucket(storage, "gs://b")
        with caplog.at_level("INFO"):
            assert gcs.read_json(storage, "gs://b/run/summary.json") is None  # an ordinary 404
    finally:
        server.stop()
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []
