"""A local Vertex AI service: rehearse a submission with no cloud account.

`hydra-vertex-pipelines emulator` serves, on 127.0.0.1, the REST calls
google-cloud-aiplatform makes for PipelineJobs (pipeline_jobs: create, get, list, cancel,
with per-task states and errors), for CustomJobs (custom_jobs: the JobService, which the
pipelines' CustomJob tasks call through gcpc's real launcher) and for the ML Metadata
contexts of experiments and their runs (metadata). Each submitted spec runs
with the local runner; gs:// data lives in a GCS emulator (gcp-storage-emulator), copied
to and from a local view of the buckets around each task (sync). Jobs survive restarts
(job_store), only the SDK's requests are answered (guard), and what a request may carry
is bounded in size, time and nesting (bodies). Point the SDK at it with
`api_endpoint="http://127.0.0.1:PORT"` and STORAGE_EMULATOR_HOST.
"""

import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import parse_qs, urlsplit

from hydra_vertex_pipelines.components import strict_json

from ..local.interpreter import TaskInterpreter
from ..spec.cloud_paths import PathMap
from .access_log import AccessLog, Sender, Service, sender_of
from .bodies import BODY_TIMEOUT_S, BodyRefused, parse_json, read_body
from .custom_jobs import JobService
from .faults import FaultPlan, Faults
from .guard import checked, send_error
from .job_store import JobStore
from .launcher_tasks import LauncherTasks
from .metadata import MetadataService
from .pipeline_jobs import PipelineJobs, PipelineRun
from .replies import Reply, error_reply
from .storage import DataDir
from .sync import Cache

_STOP_WAIT_S = 20.0  # how long a stop waits for each run to end (the runner kills after 5 s)


class VertexEmulator:
    """The REST service; `start()` returns its port, `stop()` ends its runs and saves them."""

    def __init__(
        self,
        data_dir: Path,
        max_parallel: Optional[int] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Optional[Path] = None,
        body_timeout: float = BODY_TIMEOUT_S,
        faults: Optional[FaultPlan] = None,
        access_log: Optional[AccessLog] = None,
    ) -> None:
        self.data = DataDir(Path(data_dir).resolve()).prepare()
        self.access_log = access_log  # where each served request is logged (None: nowhere)
        self.data_dir = self.data.root
        # Stands for the image's working directory: trial commands name the app relative to it.
        self.workdir = str(Path(workdir or ".").resolve())
        self.metadata = MetadataService(self.data.metadata)  # a submission's experiment association
        self.address = (host, port)
        self.body_timeout = body_timeout  # a request's body must arrive within it (bodies)
        self.store = JobStore(self.data.runs)
        self.requests: Counter = Counter()
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._port = 0
        # What a CustomJob's processes start from, as a run's tasks do.
        self.interpreter = TaskInterpreter(
            sys.executable, self.data.custom_jobs / ".interpreter", PathMap(str(self.data.buckets))
        )
        self.fault_plan = faults  # cloud failures to inject into CustomJobs (faults)
        self.job_service = JobService(self.data.custom_jobs, self.workdir, self.interpreter, Faults(faults) if faults else None)
        self.launchers = LauncherTasks(self.job_service, lambda: f"http://127.0.0.1:{self._port}")
        self.pipelines = PipelineJobs(
            self.store,
            self.data.buckets,
            self.metadata,
            self.job_service,
            self.launchers,
            Cache(self.data.cache),
            self.workdir,
            max_parallel,
        )

    @property
    def runs(self) -> Dict[str, PipelineRun]:
        return self.pipelines.runs

    @property
    def custom_jobs(self) -> List[str]:
        """Display names of the CustomJobs pipelines started, in order (cache hits start none)."""
        return self.pipelines.custom_jobs

    @property
    def faults(self) -> Counter:
        """Faults to inject, e.g. {"drop_create_response": 1}, for tests of retries."""
        return self.pipelines.faults

    # ---- serving ---------------------------------------------------------------------

    def start(self) -> int:
        self.interpreter.write()
        self._server = ThreadingHTTPServer(self.address, _handler(self))
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._port

    def stop(self) -> None:
        """Stops every running pipeline's and CustomJob's processes (SIGTERM, SIGKILL after
        a grace period), saves their jobs, ended, for the next emulator, then stops serving."""
        waits = self.pipelines.stop()
        jobs = threading.Thread(target=self.job_service.stop, args=(_STOP_WAIT_S,))
        jobs.start()
        # The server answers until the runs have ended: their launchers see their jobs end.
        for thread in [jobs, *waits]:
            thread.join(timeout=_STOP_WAIT_S)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.launchers.close()

    def kind(self, method: str, path: str) -> Optional[str]:
        """Which call a request is, as `requests` counts it (None: no such resource)."""
        if self.metadata.matches(path):
            return "metadata"
        if self.job_service.matches(path):
            return self.job_service.kind(method, path)
        return self.pipelines.kind(method, path)

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any, from_launcher: bool = False) -> Reply:
        if path == "/emulator/requests":
            return 200, {f"{m} {k}": n for (m, k), n in self.requests.items()}
        kind = self.kind(method, path)
        if kind is None:
            return error_reply(404, "NOT_FOUND", f"no such resource: {method} {path}")
        self._count(method, kind)
        if self.metadata.matches(path):
            return self.metadata.handle(method, path, query, body)
        if self.job_service.matches(path):
            return self.job_service.handle(method, path, query, body, from_launcher=from_launcher)
        return self.pipelines.handle(method, path, query, body)

    def _count(self, method: str, kind: str) -> None:
        with self._lock:
            self.requests[(method, kind)] += 1


def _handler(emulator: VertexEmulator) -> type:
    """The HTTP request handler that passes each guarded request to `emulator.handle`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            self._log(int(code))

        def _log(self, code: int) -> None:
            if emulator.access_log is not None:  # also for a request refused before it was parsed whole
                path, headers = urlsplit(getattr(self, "path", "")).path, getattr(self, "headers", None) or {}
                call = emulator.kind(self.command or "", path)
                emulator.access_log.record(Service.VERTEX, self.command or "", path, code, headers, call)

        def parse_request(self) -> bool:
            return super().parse_request() and checked(self, json_only=True)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)  # one number, within the limit: guard checked it
            try:
                body = parse_json(read_body(self.rfile, self.connection, length, emulator.body_timeout)) if length else None
            except BodyRefused as e:
                send_error(self, e.code, e.status, e.message)
                return
            url = urlsplit(self.path)
            launcher = sender_of(self.headers) is Sender.GCPC_LAUNCHER
            code, reply = emulator.handle(self.command, url.path, parse_qs(url.query), body, from_launcher=launcher)
            if code == 0:  # a dropped connection: the request was handled, the answer is lost
                self._log(0)
                self.close_connection = True
                self.connection.close()
                return
            data = strict_json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    return Handler
