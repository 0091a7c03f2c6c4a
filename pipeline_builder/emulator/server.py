"""A local Vertex AI PipelineJobs service: rehearse a submission with no cloud account.

`hydra-vertex-pipelines emulator` serves the REST calls google-cloud-aiplatform makes
for PipelineJobs (create, get, list, cancel, with per-task states and errors) on 127.0.0.1
and runs each submitted spec with the local runner. gs:// data lives in a GCS emulator
(gcp-storage-emulator), copied to and from a local view of the buckets around each task
(emulator_sync). It honours step caching as Vertex does, serves the ML Metadata calls that
associate a run with an experiment, keeps its jobs across restarts (emulator_jobs), and
answers only the SDK's requests (emulator_guard). Its JobService serves the CustomJob
calls (emulator_custom_jobs), and each CustomJob task of a pipeline runs gcpc's real
launcher against it (emulator_launcher). Point the SDK at it with
`api_endpoint="http://127.0.0.1:PORT"` and STORAGE_EMULATOR_HOST.
"""

import json
import os
import re
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

from . import guard as emulator_guard
from ..local import fuse as local_fuse
from ..spec.cloud_paths import PathMap
from .metadata import MetadataService
from .custom_jobs import JobService
from .job_store import ENDED, JobStore, interrupted, now
from .launcher_tasks import LauncherTasks
from .storage import DataDir
from .sync import Cache, StorageSync
from ..local.runner import FINAL_STATES, LocalRunner, TaskRun, UnsupportedPipeline, write_interpreter_files
from ..local.resolver import RunContext

_JOBS = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/pipelineJobs(?:/([^/:]+))?(:cancel)?$")
# Vertex's rule for pipelineJobId: fewer than 128 of a-z, 0-9 and '-'. It names a folder here.
_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,126}$")
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
_STOP_WAIT_S = 20.0  # how long a stop waits for each run to end (the runner kills after 5 s)


def _stamp(t: Optional[float]) -> Optional[str]:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class _Run:
    """One PipelineJob: its resource and the local run behind it, or, once it has ended
    in an earlier emulator, the task details it ended with."""

    def __init__(self, resource: Dict[str, Any], context: Optional[Dict[str, Any]] = None, tasks: Optional[List[Dict[str, Any]]] = None) -> None:
        self.resource = resource
        self.context = context  # its system.PipelineRun context in the metadata store
        self.runner: Optional[LocalRunner] = None
        self.tasks = tasks
        self.task_ids: Dict[str, int] = {}
        # Tasks whose outputs are in Cloud Storage: until then a task that ran shows RUNNING,
        # as on Vertex, where a CustomJob has written its files when it ends.
        self.synced: Set[str] = set()
        self.lock = threading.Lock()

    @property
    def job_id(self) -> str:
        return self.resource["name"].rsplit("/", 1)[1]

    def task_details(self) -> Optional[List[Dict[str, Any]]]:
        runner = self.runner
        if runner is None:
            return self.tasks
        return [self.task(t) for t in list(runner.tasks.values())]

    def view(self) -> Dict[str, Any]:
        with self.lock:
            resource = dict(self.resource)
            tasks = self.task_details()
        detail: Dict[str, Any] = {"pipelineRunContext": self.context} if self.context else {}
        if tasks is not None:
            detail["taskDetails"] = tasks
        if detail:
            resource["jobDetail"] = detail
        return resource

    def task(self, task: TaskRun) -> Dict[str, Any]:
        """One task's details as Vertex reports them (the caller holds the lock)."""
        state = task.state
        if state in FINAL_STATES and task.start_time and task.name not in self.synced:
            state = "RUNNING"
        detail: Dict[str, Any] = {
            "taskId": str(self.task_ids.setdefault(task.name, 1000 + len(self.task_ids))),
            "taskName": task.name,
            "state": _TASK_STATES[state],
        }
        if task.start_time:
            detail["startTime"] = _stamp(task.start_time)
        if task.end_time and state != "RUNNING":
            detail["endTime"] = _stamp(task.end_time)
        if task.error and state in ("FAILED", "CANCELLED", "SKIPPED"):
            detail["error"] = {"code": 9 if task.state == "FAILED" else 1, "message": task.error}
        resources = task.outputs.get("parameterValues", {}).get("gcp_resources") if task.kind == "custom_job" else None
        if resources and "/v1/" in resources:  # the job gcpc's launcher created
            job = json.loads(resources)["resources"][0]["resourceUri"].split("/v1/", 1)[1]
            detail["executorDetail"] = {"customJobDetail": {"job": job}}
        return detail


class VertexEmulator:
    """The REST service; `start()` returns its port, `stop()` ends its runs and saves them."""

    def __init__(
        self,
        data_dir: Path,
        max_parallel: Optional[int] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Optional[Path] = None,
    ) -> None:
        self.data = DataDir(Path(data_dir).resolve()).prepare()
        self.data_dir = self.data.root
        # Stands for the image's working directory: trial commands name the app relative to it.
        self.workdir = str(Path(workdir or ".").resolve())
        self.max_parallel = max_parallel
        self.cache = Cache(self.data.cache)
        # Display names of the CustomJobs started, in order (cache hits start none).
        self.custom_jobs: List[str] = []
        self.metadata = MetadataService(self.data.metadata)  # a submission's experiment association
        self.address = (host, port)
        self.store = JobStore(self.data.runs)
        self.runs: Dict[str, _Run] = {j.job_id: _Run(j.resource, j.context, j.tasks) for j in self.store.load()}
        self.requests: Counter = Counter()
        self.faults: Counter = Counter()  # e.g. {"drop_create_response": 1}, for tests of retries
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._threads: List[threading.Thread] = []
        self._stopping = threading.Event()
        self._port = 0
        site = str(self.data.custom_jobs / ".interpreter" / "site")
        self.job_service = JobService(self.data.custom_jobs, PathMap(str(self.data.buckets)), self.workdir, self._job_env, sys.executable, site)
        self.launchers = LauncherTasks(self.job_service, lambda: f"http://127.0.0.1:{self._port}")

    def _job_env(self, tmp: str) -> Dict[str, str]:
        """What a CustomJob's processes start from, as a run's tasks do (LocalRunner.task_env)."""
        folder = self.data.custom_jobs / ".interpreter"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": tmp}
        env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(folder / "site"), env.get("PYTHONPATH", "")] if p)
        env.update(local_fuse.environment(str(self.data.buckets), {}))
        return env

    # ---- serving ---------------------------------------------------------------------

    def start(self) -> int:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def parse_request(self) -> bool:
                return super().parse_request() and emulator_guard.checked(self, json_only=True)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length)) if length else None
                except ValueError as e:
                    emulator_guard.send_error(self, 400, "INVALID_ARGUMENT", f"the body is not JSON: {e}")
                    return
                url = urlsplit(self.path)
                # gcpc's launcher names itself in its client_info, sent as x-goog-api-client.
                agents = f"{self.headers.get('x-goog-api-client') or ''} {self.headers.get('User-Agent') or ''}"
                launcher = "google-cloud-pipeline-components" in agents
                code, reply = emulator.handle(self.command, url.path, parse_qs(url.query), body, from_launcher=launcher)
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

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        folder = self.data.custom_jobs / ".interpreter"
        write_interpreter_files(folder / "bin", folder / "site", sys.executable)
        self._server = ThreadingHTTPServer(self.address, Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._port

    def stop(self) -> None:
        """Stops every running pipeline's and CustomJob's processes (SIGTERM, SIGKILL after
        a grace period), saves their jobs, ended, for the next emulator, then stops serving."""
        with self._lock:  # no job is created after this, and every started one is in _threads
            self._stopping.set()
            threads = list(self._threads)
        live = [r.runner for r in list(self.runs.values()) if r.runner is not None and r.resource["state"] not in ENDED]
        cancels = [threading.Thread(target=runner.cancel) for runner in live]
        cancels.append(threading.Thread(target=self.job_service.stop, args=(_STOP_WAIT_S,)))
        for thread in cancels:
            thread.start()
        # The server answers until the runs have ended: their launchers see their jobs end.
        for thread in cancels + threads:
            thread.join(timeout=_STOP_WAIT_S)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.launchers.close()

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any, from_launcher: bool = False) -> Tuple[int, Any]:
        if path == "/emulator/requests":
            return 200, {f"{m} {k}": n for (m, k), n in self.requests.items()}
        if self.metadata.matches(path):
            with self._lock:
                self.requests[(method, "metadata")] += 1
            return self.metadata.handle(method, path, query, body)
        if self.job_service.matches(path):
            with self._lock:
                self.requests[(method, self.job_service.kind(method, path))] += 1
            return self.job_service.handle(method, path, query, body, from_launcher=from_launcher)
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
            return 200, {"pipelineJobs": [r.view() for r in list(self.runs.values()) if r.resource["name"].split("/")[1] == project]}
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
        if not _JOB_ID.match(job_id):
            return _error(400, "INVALID_ARGUMENT", f"pipelineJobId {job_id!r}: fewer than 128 of a-z, 0-9 and '-', not starting with '-'")
        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "the body must be a PipelineJob object")
        with self._lock:
            if self._stopping.is_set():
                return _error(503, "UNAVAILABLE", "the emulator is stopping")
            if job_id in self.runs:
                return _error(409, "ALREADY_EXISTS", f"PipelineJob {job_id} already exists")
            resource = {
                **body,
                "name": f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
                "state": "PIPELINE_STATE_PENDING",
                "createTime": now(),
                "updateTime": now(),
            }
            store = f"projects/{project}/locations/{location}/metadataStores/default"
            context = self.metadata.create(store, job_id, {"displayName": job_id, "schemaTitle": "system.PipelineRun"})
            run = self.runs[job_id] = _Run(resource, context)
            self.store.save(job_id, resource, context)
            drop = self.faults["drop_create_response"] > 0
            if drop:
                self.faults["drop_create_response"] -= 1
            thread = threading.Thread(target=self._execute, args=(job_id, run), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return (0, None) if drop else (200, run.view())

    def _cancel(self, run: _Run) -> None:
        with run.lock:
            if run.resource["state"] in ENDED:
                return
            run.resource["state"] = "PIPELINE_STATE_CANCELLING"
            run.resource["updateTime"] = now()
            runner = run.runner
        self._save(run)
        if runner is not None:
            # Its CustomJobs first, through the JobService's cancel, then its tasks.
            self.job_service.cancel_run(runner.system_labels()["vertex-ai-pipelines-run-billing-id"])
            runner.cancel()

    def _set_state(self, run: _Run, state: str, **fields: Any) -> None:
        with run.lock:
            run.resource.update(state=state, updateTime=now(), **fields)
        self._save(run)

    def _save(self, run: _Run) -> None:
        with run.lock:
            resource, tasks = dict(run.resource), run.task_details()
            if tasks is not None:
                self.store.save_tasks(run.job_id, tasks, ended=resource["state"] in ENDED)
        self.store.save(run.job_id, resource, run.context)

    def _task_changed(self, run: _Run, task: TaskRun, synced: bool = False) -> None:
        with run.lock:
            if synced:
                run.synced.add(task.name)
            self.store.task_changed(run.job_id, run.task(task))

    def _execute(self, job_id: str, run: _Run) -> None:
        from ..cloud import gcs

        work = self.store.folder(job_id)
        # One local view of the buckets for every run, as the FUSE mount is one view of
        # them: a resumed run's collector finds the cached trials' results of earlier runs.
        root = self.data.buckets
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
                hooks=StorageSync(storage, root, self.cache, self.custom_jobs, lambda task: self._task_changed(run, task, synced=True)),
                on_change=lambda task: self._task_changed(run, task),
                custom_job_task=self.launchers,
                context=_context(run.resource),
            )
            runner.hooks.runner = runner
        except (UnsupportedPipeline, KeyError, ValueError) as e:
            console.close()
            self._set_state(run, "PIPELINE_STATE_FAILED", error={"code": 3, "message": f"{type(e).__name__}: {e}"}, endTime=now())
            return
        with run.lock:
            cancelled = run.resource["state"] == "PIPELINE_STATE_CANCELLING"
            run.runner = runner
        if cancelled or self._stopping.is_set():
            runner.cancel()
        else:
            self._set_state(run, "PIPELINE_STATE_RUNNING", startTime=now())
        try:
            result = runner.run()
            if self._stopping.is_set() and result.state != "SUCCEEDED":
                self._end_stopped(run)
                return
            state = _JOB_STATES[result.state]
            fields: Dict[str, Any] = {"endTime": now()}
            if state == "PIPELINE_STATE_FAILED":
                failed = [t.name for t in result.tasks.values() if t.state == "FAILED"]
                fields["error"] = {"code": 9, "message": f"The DAG failed because some tasks failed. The failed tasks are: [{', '.join(failed)}]."}
            self._set_state(run, state, **fields)
        except Exception as e:  # the emulator must answer GETs whatever a run does
            self._set_state(run, "PIPELINE_STATE_FAILED", error={"code": 13, "message": f"{type(e).__name__}: {e}"}, endTime=now())
        finally:
            console.close()

    def _end_stopped(self, run: _Run) -> None:
        """The job of a run the emulator's stop ended: as a restart would find it."""
        with run.lock:
            tasks = run.task_details() or []
            interrupted(run.resource, tasks)
            run.tasks, run.runner = tasks, None
        self._save(run)


def _context(resource: Mapping[str, Any]) -> RunContext:
    """The run's pipeline-level placeholder values, as Vertex fills them for this job."""
    name = resource["name"]
    started = time.time()
    return RunContext(
        job_name=name.rsplit("/", 1)[1],
        job_resource_name=name,
        job_id=str(int(started * 1000)),
        create_time=resource.get("createTime", ""),
        project=name.split("/")[1],
        location=name.split("/")[3],
        pipeline_root=resource.get("runtimeConfig", {}).get("gcsOutputDirectory", ""),
        service_account=resource.get("serviceAccount", ""),
        network=resource.get("network", ""),
        encryption_key_name=resource.get("encryptionSpec", {}).get("kmsKeyName", ""),
    )


def _error(code: int, status: str, message: str) -> Tuple[int, Any]:
    return code, {"error": {"code": code, "message": message, "status": status}}
