"""A local Vertex AI PipelineJobs service: rehearse a submission with no cloud account.

`python -m pipeline_builder emulator` serves the REST calls google-cloud-aiplatform makes
for PipelineJobs (create, get, list, cancel, with per-task states and errors) on 127.0.0.1
and runs each submitted spec with the local runner. gs:// data lives in a GCS emulator
(gcp-storage-emulator): before a trial starts, its output folder is copied out of the
bucket (pickled jobs live there); after a task ends, what it wrote is copied back, as
Vertex's Cloud Storage FUSE mount would. It honours step caching as Vertex does (a task
whose cache key succeeded before is SKIPPED), and serves the ML Metadata calls that
associate a run with an experiment. Point the SDK at it with
`api_endpoint="http://127.0.0.1:PORT"` and STORAGE_EMULATOR_HOST.
"""

import itertools
import json
import os
import re
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .cloud_paths import PathMap
from .emulated_metadata import MetadataService
from .local_runner import LocalRunner, TaskRun, UnsupportedPipeline

_JOBS = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/pipelineJobs(?:/([^/:]+))?(:cancel)?$")
_TASK_STATES = {
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CACHED": "SKIPPED",  # Vertex's state for a cache hit
    "SKIPPED": "NOT_TRIGGERED",  # an upstream task failed
    "CANCELLED": "CANCELLED",
}
_JOB_STATES = {"SUCCEEDED": "PIPELINE_STATE_SUCCEEDED", "FAILED": "PIPELINE_STATE_FAILED", "CANCELLED": "PIPELINE_STATE_CANCELLED"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _stamp(t: Optional[float]) -> Optional[str]:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class _Run:
    """One PipelineJob: its resource and the local run behind it."""

    def __init__(self, resource: Dict[str, Any], context: Optional[Dict[str, Any]] = None) -> None:
        self.resource = resource
        self.context = context  # its system.PipelineRun context in the metadata store
        self.runner: Optional[LocalRunner] = None
        self.task_ids: Dict[str, int] = {}
        self.lock = threading.Lock()

    def view(self) -> Dict[str, Any]:
        with self.lock:
            resource = dict(self.resource)
            runner = self.runner
        detail: Dict[str, Any] = {"pipelineRunContext": self.context} if self.context else {}
        if runner is not None:
            detail["taskDetails"] = [self._task(t) for t in runner.tasks.values()]
        if detail:
            resource["jobDetail"] = detail
        return resource

    def _task(self, task: TaskRun) -> Dict[str, Any]:
        name = self.resource["name"]
        project, location = name.split("/")[1], name.split("/")[3]
        detail: Dict[str, Any] = {
            "taskId": str(self.task_ids.setdefault(task.name, 1000 + len(self.task_ids))),
            "taskName": task.name,
            "state": _TASK_STATES[task.state],
        }
        if task.start_time:
            detail["startTime"] = _stamp(task.start_time)
        if task.end_time:
            detail["endTime"] = _stamp(task.end_time)
        if task.error and task.state in ("FAILED", "CANCELLED", "SKIPPED"):
            detail["error"] = {"code": 9 if task.state == "FAILED" else 1, "message": task.error}
        if task.kind == "custom_job" and task.state not in ("PENDING", "CACHED"):
            job = f"projects/{project}/locations/{location}/customJobs/{detail['taskId']}"
            detail["executorDetail"] = {"customJobDetail": {"job": job}}
        return detail


class VertexEmulator:
    """The REST service; `start()` returns its port."""

    def __init__(
        self,
        data_dir: Path,
        max_parallel: Optional[int] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Optional[Path] = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        # Stands for the image's working directory: trial commands name the app relative to it.
        self.workdir = str(Path(workdir or ".").resolve())
        self.max_parallel = max_parallel
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cache = _Cache(self.data_dir / "cache.json")
        # Display names of the CustomJobs started, in order (cache hits start none).
        self.custom_jobs: List[str] = []
        self.metadata = MetadataService()  # experiments: a submission's experiment association
        self.address = (host, port)
        self.runs: Dict[str, _Run] = {}
        self.requests: Counter = Counter()
        self.faults: Counter = Counter()  # e.g. {"drop_create_response": 1}, for tests of retries
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    # ---- serving ---------------------------------------------------------------------

    def start(self) -> int:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                url = urlsplit(self.path)
                code, reply = emulator.handle(self.command, url.path, parse_qs(url.query), body)
                if code == 0:  # a dropped connection: the request was handled, the answer is lost
                    self.close_connection = True
                    self.connection.close()
                    return
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer(self.address, Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._server.server_address[1]

    def stop(self) -> None:
        for run in list(self.runs.values()):
            if run.runner is not None:
                run.runner.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any) -> Tuple[int, Any]:
        if path == "/emulator/requests":
            return 200, {f"{m} {k}": n for (m, k), n in self.requests.items()}
        if self.metadata.matches(path):
            with self._lock:
                self.requests[(method, "metadata")] += 1
            return self.metadata.handle(method, path, query, body)
        match = _JOBS.match(path)
        if match is None:
            return _error(404, "NOT_FOUND", f"no such resource: {method} {path}")
        project, location, job_id, cancel = match.groups()
        kind = "cancel" if cancel else "get" if job_id and method == "GET" else "create" if method == "POST" else "list"
        with self._lock:
            self.requests[(method, kind)] += 1
        if kind == "create":
            return self._create(project, location, query.get("pipelineJobId", [None])[0], body or {})
        if kind == "list":
            return 200, {"pipelineJobs": [r.view() for r in self.runs.values() if r.resource["name"].split("/")[1] == project]}
        run = self.runs.get(job_id or "")
        if run is None:
            return _error(404, "NOT_FOUND", f"PipelineJob {job_id} not found")
        if kind == "cancel":
            self._cancel(run)
            return 200, {}
        return 200, run.view()

    # ---- jobs ------------------------------------------------------------------------

    def _create(self, project: str, location: str, job_id: Optional[str], body: Dict[str, Any]) -> Tuple[int, Any]:
        job_id = job_id or f"job-{int(time.time() * 1000)}"
        with self._lock:
            if job_id in self.runs:
                return _error(409, "ALREADY_EXISTS", f"PipelineJob {job_id} already exists")
            resource = {
                **body,
                "name": f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
                "state": "PIPELINE_STATE_PENDING",
                "createTime": _now(),
                "updateTime": _now(),
            }
            store = f"projects/{project}/locations/{location}/metadataStores/default"
            context = self.metadata.create(store, job_id, {"displayName": job_id, "schemaTitle": "system.PipelineRun"})
            run = self.runs[job_id] = _Run(resource, context)
            drop = self.faults["drop_create_response"] > 0
            if drop:
                self.faults["drop_create_response"] -= 1
        threading.Thread(target=self._execute, args=(job_id, run), daemon=True).start()
        return (0, None) if drop else (200, run.view())

    def _cancel(self, run: _Run) -> None:
        with run.lock:
            if run.resource["state"] in _JOB_STATES.values():
                return
            run.resource["state"] = "PIPELINE_STATE_CANCELLING"
            run.resource["updateTime"] = _now()
            runner = run.runner
        if runner is not None:
            runner.cancel()

    def _set_state(self, run: _Run, state: str, **fields: Any) -> None:
        with run.lock:
            run.resource.update(state=state, updateTime=_now(), **fields)

    def _execute(self, job_id: str, run: _Run) -> None:
        from . import gcs

        work = self.data_dir / "runs" / job_id
        # One local mirror of the buckets for every run, as the FUSE mount is one view of
        # them: a resumed run's collector finds the cached trials' results of earlier runs.
        root = self.data_dir / "gcs"
        work.mkdir(parents=True, exist_ok=True)
        console = open(work / "console.log", "w", encoding="utf-8")  # what a person would see in Cloud Logging
        try:
            storage = gcs.client()
            runner = LocalRunner(
                run.resource["pipelineSpec"],
                PathMap(str(root)),
                work / "work",
                max_parallel=self.max_parallel,
                cwd=self.workdir,
                console=console,
                hooks=_StorageSync(storage, root, self.cache, self.custom_jobs),
            )
            runner.hooks.runner = runner
        except (UnsupportedPipeline, KeyError, ValueError) as e:
            self._set_state(run, "PIPELINE_STATE_FAILED", error={"code": 3, "message": f"{type(e).__name__}: {e}"}, endTime=_now())
            return
        with run.lock:
            cancelled = run.resource["state"] == "PIPELINE_STATE_CANCELLING"
            run.runner = runner
        if cancelled:
            runner.cancel()
        self._set_state(run, "PIPELINE_STATE_RUNNING", startTime=_now())
        try:
            result = runner.run()
            state = _JOB_STATES[result.state]
            fields: Dict[str, Any] = {"endTime": _now()}
            if state == "PIPELINE_STATE_FAILED":
                failed = [t.name for t in result.tasks.values() if t.state == "FAILED"]
                fields["error"] = {"code": 9, "message": f"The DAG failed because some tasks failed. The failed tasks are: [{', '.join(failed)}]."}
            self._set_state(run, state, **fields)
        except Exception as e:  # the emulator must answer GETs whatever a run does
            self._set_state(run, "PIPELINE_STATE_FAILED", error={"code": 13, "message": f"{type(e).__name__}: {e}"}, endTime=_now())
        finally:
            console.close()


class _StorageSync:
    """Copies a task's files between the GCS emulator and the local run folder, and skips
    a task whose cache key succeeded before, as Vertex's execution cache does."""

    def __init__(self, storage: Any, root: Path, cache: "_Cache", custom_jobs: List[str]) -> None:
        self.storage = storage
        self.root = root
        self.cache = cache
        self.custom_jobs = custom_jobs
        self.runner: Optional[LocalRunner] = None
        self._keys: Dict[str, Optional[str]] = {}  # task -> its cache key, from before() to after()

    def _uri(self, local: Path) -> str:
        return "gs://" + local.relative_to(self.root).as_posix()

    def before(self, task: TaskRun, inputs: Mapping[str, Any]) -> Optional[str]:
        from . import gcs

        key = self._keys[task.name] = self.runner.cache_key(task.name) if self.runner is not None else None
        if key is not None and self.cache.hit(key):
            return "CACHED"
        if task.kind == "custom_job":
            self.custom_jobs.append(str(inputs.get("display_name", task.name)))
        base = inputs.get("base_output_directory")
        if task.kind == "custom_job" and base:
            bucket, name = gcs.split_uri(base)
            gcs.download_tree(self.storage, base, str(self.root / bucket / name))
        for pool in inputs.get("worker_pool_specs") or [] if task.kind == "custom_job" else []:
            for uri in (pool or {}).get("python_package_spec", {}).get("package_uris", []):
                local = self.root / uri[len("gs://") :]
                data = gcs.read_bytes(self.storage, uri)
                if data is not None and not local.exists():
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(data)
                    os.utime(local, (0, 0))  # a download, not a task output: not uploaded back
        for value in inputs.values():  # files a container task names, e.g. a trial list
            if isinstance(value, str) and value.startswith("/gcs/"):
                data = gcs.read_bytes(self.storage, "gs://" + value[len("/gcs/") :])
                if data is not None:
                    # Paths inside the file name the FUSE mount, which is `root` here.
                    data = data.replace(b'"/gcs/', f'"{self.root}/'.encode())
                    local = self.root / value[len("/gcs/") :]
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(data)

    def after(self, task: TaskRun) -> None:
        from . import gcs

        key = self._keys.get(task.name)
        if task.state == "SUCCEEDED" and key is not None:
            self.cache.add(key)
        started = (task.start_time or 0) - 1
        for bucket_dir in self.root.iterdir() if self.root.is_dir() else []:
            gcs.ensure_bucket(self.storage, f"gs://{bucket_dir.name}")
            gcs.upload_tree(self.storage, str(bucket_dir), f"gs://{bucket_dir.name}", newer_than=started)


class _Cache:
    """Cache keys of tasks that succeeded, kept in the data dir across emulator restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.keys = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()

    def hit(self, key: str) -> bool:
        with self.lock:
            return key in self.keys

    def add(self, key: str) -> None:
        with self.lock:
            self.keys.add(key)
            self.path.write_text(json.dumps(sorted(self.keys)), encoding="utf-8")


def _error(code: int, status: str, message: str) -> Tuple[int, Any]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def serve(
    data_dir: Path, port: int = 0, gcs_port: int = 0, max_parallel: Optional[int] = None, workdir: Optional[Path] = None
) -> None:
    """Runs a GCS emulator and the Vertex emulator until Ctrl-C."""
    import os

    try:
        from gcp_storage_emulator.server import create_server
    except ImportError:
        raise SystemExit("the emulator needs gcp-storage-emulator: pip install 'hydra-vertex-pipelines-launcher[emulator]'") from None
    data_dir = Path(data_dir).resolve()
    (data_dir / "gcs").mkdir(parents=True, exist_ok=True)
    storage_server = create_server("127.0.0.1", gcs_port, in_memory=False, data_dir=str(data_dir / "gcs"))
    storage_server.start()
    gcs_url = f"http://127.0.0.1:{storage_server._api._httpd.server_address[1]}"
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
    emulator = VertexEmulator(data_dir, max_parallel=max_parallel, port=port, workdir=workdir)
    vertex_port = emulator.start()
    print(f"Vertex AI emulator on http://127.0.0.1:{vertex_port}, Cloud Storage emulator on {gcs_url}")
    print(f"Trials run in {emulator.workdir}, standing for the image's working directory")
    print("Use it from the launcher with:")
    print(f"  export STORAGE_EMULATOR_HOST={gcs_url}")
    print(f"  ... hydra.launcher.mode=submit hydra.launcher.api_endpoint=http://127.0.0.1:{vertex_port} hydra.launcher.project=local")
    print("Ctrl-C stops it.", flush=True)
    try:
        for _ in itertools.count():
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        storage_server.stop()
