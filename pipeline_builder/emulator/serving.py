"""`hydra-vertex-pipelines emulator`: both emulators in one process, until a signal.

SIGINT (Ctrl-C) and SIGTERM (a service manager, `kill`, a test's teardown) stop it the same
clean way: no new requests, every running pipeline's processes stopped, every job saved
ended, so a restart on the same data dir finds them all.
"""

import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from .access_log import AccessLog
from .bodies import BODY_TIMEOUT_S
from .faults import FaultPlan
from .job_store import ENDED
from .server import VertexEmulator
from .storage import DataDir, StorageServer

T = TypeVar("T")


def serve(
    data_dir: Path,
    port: int = 0,
    gcs_port: int = 0,
    max_parallel: Optional[int] = None,
    workdir: Optional[Path] = None,
    body_timeout: float = BODY_TIMEOUT_S,
    faults: Optional[FaultPlan] = None,
) -> None:
    """Runs a GCS emulator and the Vertex emulator until SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        data = DataDir(Path(data_dir).resolve()).prepare()
        access_log = AccessLog(data.access_log)  # both services' requests, in one file
        storage = _listening(lambda: StorageServer(data.storage, port=gcs_port, access_log=access_log), gcs_port, "--gcs-port")
        gcs_url = storage.start()
        os.environ["STORAGE_EMULATOR_HOST"] = gcs_url  # for the emulator's own copies to and from it
        emulator = VertexEmulator(
            data.root,
            max_parallel=max_parallel,
            port=port,
            workdir=workdir,
            body_timeout=body_timeout,
            faults=faults,
            access_log=access_log,
        )
        try:
            vertex_port = _listening(emulator.start, port, "--port")
            _greet(vertex_port, gcs_url, emulator, len(emulator.runs))
            while not stop.wait(3600):
                pass
            running = sum(1 for r in list(emulator.runs.values()) if r.resource["state"] not in ENDED)
            print(f"stopping: {running} running pipeline(s) to stop", flush=True)
        finally:
            emulator.stop()
            storage.stop()
            access_log.close()
        print("stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listening(start: Callable[[], T], port: int, option: str) -> T:
    try:
        return start()
    except OSError as e:
        raise SystemExit(
            f"error: cannot serve on 127.0.0.1:{port} ({e.strerror}); choose another {option}, or 0 for any free port"
        ) from None


def _greet(vertex_port: int, gcs_url: str, emulator: VertexEmulator, known: int) -> None:
    # The first line is read by scripts and tests: keep its shape.
    print(f"Vertex AI emulator on http://127.0.0.1:{vertex_port}, Cloud Storage emulator on {gcs_url}")
    print(f"Trials run in {emulator.workdir}, standing for the image's working directory")
    print(f"Data in {emulator.data_dir} ({known} job(s) from earlier runs); requests logged in {emulator.data.access_log}")
    if emulator.fault_plan is not None:
        print(emulator.fault_plan.describe())
    print("Use it from the launcher with:")
    print(f"  export STORAGE_EMULATOR_HOST={gcs_url}")
    endpoint = f"hydra.launcher.api_endpoint=http://127.0.0.1:{vertex_port}"
    print(f"  ... hydra.launcher.mode=submit {endpoint} hydra.launcher.project=local")
    print("Ctrl-C stops it.", flush=True)
