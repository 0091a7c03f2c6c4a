"""Every request the emulators serve, one JSON line each, in the data dir's `access.jsonl`.

A line is `{"time", "service", "method", "path", "status", "sender", "call"}`: `service` is
`vertex` (the Vertex API) or `storage` (the Cloud Storage emulator); `path` has no query
string; `status` is the HTTP status answered (0: the connection was dropped unanswered, a
fault a test asked for); `call` names what was asked: the Vertex call (`create`, `get`,
`custom_job_get`, ...; None for any other path) or the Cloud Storage one
(`storage_call`). It is how tests and benchmarks count what a client asks of Vertex and
Cloud Storage, e.g. that a launcher's requests grow with polls, not with trials.

Who sent a request is told from its headers, since every client is on 127.0.0.1:
- `gcpc_launcher`: gcpc's CustomJob launcher inside an emulated run, which names itself
  (google-cloud-pipeline-components) in the `x-goog-api-client` header;
- `emulator`: the emulator's own Cloud Storage copies around each task, made with a
  client whose user agent is `EMULATOR_AGENT`;
- `client`: anyone else: the launcher, the `hydra-vertex-pipelines` commands, a script,
  a trial's own calls. The emulator's task runners call its services in-process, not
  over HTTP, so they send nothing.
"""

import json
import threading
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra_vertex_pipelines.components.clock import rfc3339

EMULATOR_AGENT = "hydra-vertex-pipelines-emulator"  # the user agent of the emulator's own storage client
_GCPC = "google-cloud-pipeline-components"


class Sender(str, Enum):
    """Who sent a request, as its headers tell."""

    CLIENT = "client"
    GCPC_LAUNCHER = "gcpc_launcher"
    EMULATOR = "emulator"

    def __str__(self) -> str:
        return self.value


class Service(str, Enum):
    """Which of the emulator's two servers answered."""

    VERTEX = "vertex"
    STORAGE = "storage"

    def __str__(self) -> str:
        return self.value


def sender_of(headers: Any) -> Sender:
    """Who sent a request with these (case-insensitive) headers."""
    agents = f"{headers.get('x-goog-api-client') or ''} {headers.get('User-Agent') or ''}"
    if _GCPC in agents:
        return Sender.GCPC_LAUNCHER
    if EMULATOR_AGENT in agents:
        return Sender.EMULATOR
    return Sender.CLIENT


def storage_call(method: str, path: str) -> str:
    """What a Cloud Storage JSON API request does: `object_read` (an object's data or
    metadata), `object_write` (an upload, copy, rewrite or compose), `object_delete`,
    `object_list`, `batch`, or `bucket` (a bucket's own calls: get, create, its IAM)."""
    if path.startswith("/upload/"):
        return "object_write"
    if path.startswith("/batch/"):
        return "batch"
    if path.startswith("/download/"):
        return "object_read"
    if "/o/" in path:
        if method == "DELETE":
            return "object_delete"
        return "object_read" if method == "GET" else "object_write"
    return "object_list" if path.endswith("/o") and method == "GET" else "bucket"


class AccessLog:
    """Appends one line per request, whole lines only (one lock for both servers' threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open while the emulator serves

    def record(self, service: Service, method: str, path: str, status: int, headers: Any, call: Optional[str] = None) -> None:
        """Logs a request; `call` is the Vertex call (Cloud Storage's is told from its path)."""
        path = path.split("?", 1)[0]
        line = json.dumps(
            {
                "time": rfc3339(),
                "service": service.value,
                "method": method,
                "path": path,
                "status": status,
                "sender": sender_of(headers).value,
                "call": storage_call(method, path) if service is Service.STORAGE else call,
            }
        )
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_access_log(path: Path) -> List[Dict[str, Any]]:
    """The requests logged at `path`, oldest first (a line cut short by a kill is left out)."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
