"""Runs an emulated pipeline's CustomJob tasks as Vertex does: gcpc's launcher, for real.

Each CustomJob task's compiled command (`python3 -u -m
google_cloud_pipeline_components.container.v1.custom_job.launcher --type CustomJob
--payload ... --project ... --location ... --gcp_resources ...`) is filled in by the
resolver as the KFP driver fills it, then executed: the launcher parses its payload, adds
the system labels, sends CreateCustomJob, polls GetCustomJob until the job ends and writes
gcp_resources. Only its JobService client is pointed at the emulator (gcpc_client).
The task's state follows the launcher's exit code; the job runs in the emulator's
JobService (custom_jobs).

gcpc and aiplatform take seconds to import: one helper process imports them once and
forks a child per task (the fork server, with gcpc_client among its preloads), rather
than a fresh interpreter per trial. A cancelled run cancels its CustomJobs through the
JobService's cancel, then the launcher is killed if it has not ended on its own.
"""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

from ..local.forked import ForkedProcess, ForkServer
from ..local.handlers import INTERRUPTED, RunServices, TaskCall, TaskEnd, TaskHandler
from ..local.plan import CUSTOM_JOB_LAUNCHER, TaskFailure, TaskState, UnsupportedPipeline
from ..local.processes import exit_reason, tail
from ..local.resolver import executor_input, executor_outputs, filled_command
from ..local.sessions import GRACE_S, signal_session
from .custom_jobs import BILLING_LABEL, ENDED, JobService, JobState

# Names the emulator's JobService to the launcher's client (see gcpc_client).
JOB_SERVICE_VARIABLE = "PIPELINE_BUILDER_EMULATED_JOB_SERVICE"
# What the launcher module imports (not the module itself: runpy runs it afresh per task).
PRELOAD = [
    "google_cloud_pipeline_components.container.v1.custom_job.remote_runner",
    "google_cloud_pipeline_components.container.v1.gcp_launcher.utils.parser_util",
    "google.cloud.aiplatform",
    "hydra_vertex_pipelines.pipeline_builder.emulator.gcpc_client",
]
_JOB_URI = "/v1/"  # gcp_resources names the job as https://ENDPOINT/v1/NAME


class LauncherTasks(TaskHandler):
    """The CustomJob task handler of the emulator's runs, shared by them all; the
    emulator's `close()` ends its helper."""

    def __init__(self, service: JobService, endpoint: Callable[[], str], python: str = sys.executable) -> None:
        self.service = service
        self.endpoint = endpoint  # http://127.0.0.1:PORT, known once the emulator serves
        self.python = python
        self._server: Optional[ForkServer] = None
        self._lock = threading.Lock()

    def server(self) -> ForkServer:
        with self._lock:
            if self._server is None:
                here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # beside this package
                # gcpc's launcher answers SIGTERM with a CancelCustomJob to the real Vertex
                # endpoint (see gcpc_client): the server's children are only ever killed.
                self._server = ForkServer(
                    self.python, PRELOAD, here, dict(os.environ), custom_jobs=False, stop_signal=signal.SIGKILL
                )
            return self._server

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()

    def command(self, argv: List[str]) -> List[str]:
        """The launcher's command for the helper: `python3 -u -m M ...` as `python -m M ...`
        (-u is PYTHONUNBUFFERED, which the launcher's environment sets)."""
        at = argv.index("-m") if "-m" in argv else -1
        if at < 1 or argv[at + 1] != CUSTOM_JOB_LAUNCHER or set(argv[1:at]) - {"-u"}:
            raise UnsupportedPipeline(f"a CustomJob task's command is not gcpc's launcher module: {argv[:4]}")
        return [self.python, *argv[at:]]

    def run(self, call: TaskCall, services: RunServices) -> TaskEnd:
        task, folder = call.task, call.folder
        base = call.inputs.get("base_output_directory") or ""
        task.output_dir = services.paths.local(base) if base else str(folder)
        outputs = executor_outputs(call.planned.component, folder)
        argv = filled_command(call.planned.container, executor_input(call.inputs, outputs))
        resources = Path(
            outputs.get("parameters", {}).get("gcp_resources", {}).get("outputFile", folder / "outputs" / "gcp_resources")
        )
        resources.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": call.tmp,
            "VERTEX_AI_PIPELINES_RUN_LABELS": json.dumps(dict(services.labels)),
            JOB_SERVICE_VARIABLE: self.endpoint(),
        }
        log = str(folder / "launcher.log")
        Path(log).write_text("", encoding="utf-8")
        task.log_paths = [log]
        proc = self.server().spawn(self.command(argv), env, str(folder), log)
        self._wait(services, proc)
        name = _job_name(resources)
        job = self.service.jobs.get(name or "")
        if name:
            task.outputs = {"parameterValues": {"gcp_resources": resources.read_text(encoding="utf-8")}}
        if job is not None:
            task.log_paths = [*job.logs, log]
        code = proc.wait()  # it has ended: its exit code
        if services.stopping or (job is not None and job.state == JobState.CANCELLED):
            return TaskEnd(TaskState.CANCELLED, None, INTERRUPTED if services.stopping else f"its CustomJob {name} was cancelled")
        if code == 0:
            return TaskEnd(TaskState.SUCCEEDED, 0)
        if job is not None and job.state in ENDED and job.resource.get("error"):
            error = job.resource["error"]
            message = str(error.get("message", ""))
            job_error = (int(error.get("code") or 0), message)
            return TaskEnd.failed(TaskFailure(f"CustomJob {name} ended {job.state}: {message}", code, job_error=job_error))
        return TaskEnd.failed(TaskFailure(f"gcpc's CustomJob launcher failed ({exit_reason(code)})", code, log, tail(log)))

    def _wait(self, services: RunServices, proc: ForkedProcess) -> None:
        """Until the launcher ends; once the run stops, its jobs are cancelled and the
        launcher, given time to see that, is killed."""
        stopped_at: Optional[float] = None
        while proc.poll() is None:
            if services.stopping and stopped_at is None:
                stopped_at = time.monotonic()
                self.service.cancel_run(services.labels[BILLING_LABEL])
            if stopped_at is not None and time.monotonic() - stopped_at > GRACE_S + 2:
                signal_session(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=0.1)
            except Exception:
                pass


def _job_name(resources: Path) -> Optional[str]:
    """The CustomJob the launcher created, from the gcp_resources it wrote."""
    try:
        data = json.loads(resources.read_text(encoding="utf-8"))
        uri = data["resources"][0]["resourceUri"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return uri.split(_JOB_URI, 1)[1] if _JOB_URI in uri else None
