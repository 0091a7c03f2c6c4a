"""The emulator's data dir, and the Cloud Storage emulator that keeps its files there.

Two folders hold Cloud Storage data and must never be one: the storage emulator's own
store (gcp-storage-emulator's `.cloudstorage/`, with its metadata) and the local view of
the buckets that trials see, as Vertex's FUSE mount shows them under /gcs/. Every folder
of that view is uploaded back as a bucket, so a bookkeeping folder inside it would be
taken for a bucket named `.cloudstorage`.
"""

import logging
import shutil
import threading
from dataclasses import dataclass
from functools import partial
from http.server import HTTPServer
from pathlib import Path
from typing import Any, Optional

from hydra_vertex_pipelines.components.atomic_write import write_atomic

from .access_log import EMULATOR_AGENT, AccessLog, Service
from .guard import checked

_STORE = ".cloudstorage"  # gcp-storage-emulator's folder inside the data dir it is given


@dataclass(frozen=True)
class DataDir:
    """Where everything lives under `--data-dir`; all of it survives a restart."""

    root: Path

    @property
    def storage(self) -> Path:
        """The Cloud Storage emulator's own store (objects and their metadata)."""
        return self.root / "storage"

    @property
    def buckets(self) -> Path:
        """The FUSE view: one folder per bucket (gs://B/x is buckets/B/x), nothing else."""
        return self.root / "gcs"

    @property
    def runs(self) -> Path:
        """One folder per PipelineJob: its resource, task states, console log and work files."""
        return self.root / "runs"

    @property
    def custom_jobs(self) -> Path:
        """The JobService's CustomJobs, one `ID.json` each."""
        return self.root / "customJobs"

    @property
    def access_log(self) -> Path:
        """Every request the emulators served, a JSON line each (access_log)."""
        return self.root / "access.jsonl"

    @property
    def cache(self) -> Path:
        return self.root / "cache.json"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.json"

    def prepare(self) -> "DataDir":
        """Creates the folders; moves a store left inside the bucket view by an older
        emulator to its own folder, so its objects are kept."""
        for folder in (self.storage, self.buckets, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        old = self.buckets / _STORE
        if old.is_dir():
            if (self.storage / _STORE).exists():
                shutil.rmtree(old)
            else:
                old.rename(self.storage / _STORE)
        return self


def _not_a_missing_object(record: logging.LogRecord) -> bool:
    """gcp-storage-emulator logs an error for every read of an absent object; for the
    emulator that is an ordinary 404 (the launcher asks whether a summary is there yet)."""
    return not (record.msg == "Resource not found:" or isinstance(record.msg, (FileNotFoundError, IsADirectoryError)))


class StorageServer:
    """gcp-storage-emulator on disk, answering only requests that name its own address."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0, access_log: Optional[AccessLog] = None) -> None:
        try:
            from gcp_storage_emulator.server import RequestHandler
            from gcp_storage_emulator.storage import Storage
        except ImportError:
            raise SystemExit(
                "the emulator needs gcp-storage-emulator: pip install 'hydra-vertex-pipelines-launcher[emulator]'"
            ) from None

        class Guarded(RequestHandler):
            def parse_request(self) -> bool:
                # Uploads carry their object's own Content-Type: only Host and Origin are checked.
                return super().parse_request() and checked(self, json_only=False)

            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                if access_log is not None:  # also for a request refused before it was parsed whole
                    path, headers = getattr(self, "path", ""), getattr(self, "headers", None) or {}
                    access_log.record(Service.STORAGE, self.command or "", path, int(code), headers)

        try:
            storage = Storage(use_memory_fs=False, data_dir=str(folder))
        except ValueError as e:
            index = Path(folder) / _STORE / ".meta"
            raise SystemExit(
                f"error: the Cloud Storage emulator's index {index} is unreadable ({e}); move it away to start with no buckets"
            ) from None
        _replace_whole_files(storage)
        missing = logging.getLogger("gcp_storage_emulator.storage")
        if _not_a_missing_object not in missing.filters:
            missing.addFilter(_not_a_missing_object)
        # One request at a time, as gcp-storage-emulator serves: its store is not thread-safe.
        self._httpd = HTTPServer((host, port), partial(Guarded, storage))
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


def own_client() -> Any:
    """The emulator's own Cloud Storage client (its copies around each task): anonymous,
    its user agent EMULATOR_AGENT, so the access log tells its requests from a client's."""
    from google.api_core.client_info import ClientInfo
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(credentials=AnonymousCredentials(), client_info=ClientInfo(user_agent=EMULATOR_AGENT))


def _replace_whole_files(storage: Any) -> None:
    """gcp-storage-emulator rewrites its whole index (.meta) in place on every change, so a
    kill mid-write leaves it empty and every bucket lost: write each file beside, then
    rename it over the old one. Left as it is if its store is not laid out as expected."""
    store = getattr(storage, "_store", None)
    disk_path = getattr(store, "_disk_path", None)
    if store is None or disk_path is None or getattr(store, "_use_memory", True):
        return

    def write_bytes(rel: str, content: bytes) -> None:
        write_atomic(disk_path(rel), content)

    store.write_bytes = write_bytes
