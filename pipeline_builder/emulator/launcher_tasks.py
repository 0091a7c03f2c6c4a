"""Runs an emulated pipeline's CustomJob tasks as Vertex does: gcpc's launcher, for real.

Each CustomJob task's compiled command (`python3 -u -m
google_cloud_pipeline_components.container.v1.custom_job.launcher --type CustomJob
--payload ... --project ... --location ... --gcp_resources ...`) is filled in by the
resolver as the KFP driver fills it, then executed: the launcher parses its payload, adds
the system labels, sends CreateCustomJob, polls GetCustomJob until the job ends and writes
gcp_resources. Only its JobService client is pointed at the emulator (emulator_client).
The task's state follows the launcher's exit code; the job runs in the emulator's
JobService (emulator_custom_jobs).

gcpc and aiplatform take seconds to import: one helper process imports them once and
forks a child per task (the fork server, with emulator_client among its preloads), rather
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
from typing import TYPE_CHECKING, Callable, List, Optional

from .custom_jobs import ENDED, JobService
from ..local.fork_server import ForkServer
from ..local.processes import KILL_GRACE_S, exit_reason, signal_session, tail
from ..local.plan import CUSTOM_JOB_LAUNCHER, TaskRun, UnsupportedPipeline
from ..local.tasks import _outputs
from ..local.resolver import executor_input, fill

if TYPE_CHECKING:
    from ..local.runner import LocalRunner

# Names the emulator's JobService to the launcher's client (see emulator_client).
JOB_SERVICE_VARIABLE = "PIPELINE_BUILDER_EMULATED_JOB_SERVICE"
# What the launcher module imports (not the module itself: runpy runs it afresh per task).
PRELOAD = [
    "google_cloud_pipeline_components.container.v1.custom_job.remote_runner",
    "google_cloud_pipeline_components.container.v1.gcp_launcher.utils.parser_util",
    "google.cloud.aiplatform",
    "hydra_vertex_pipelines.pipeline_builder.emulator.gcpc_client",
]
_JOB_URI = "/v1/"  # gcp_resources names the job as https://ENDPOINT/v1/NAME


class LauncherTasks:
    """The `custom_job_task` of the emulator's runners; `close()` ends the helper."""

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
                self._server = ForkServer(self.python, PRELOAD, here, dict(os.environ), custom_jobs=False)
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

    def __call__(self, runner: "LocalRunner", task: TaskRun, task_dir: Path, tmp: str) -> None:
        planned = runner.plan.planned[task.name]
        inputs = runner.plan.inputs(task.name)
        base = inputs.get("base_output_directory") or ""
        task.output_dir = runner.paths.local(base) if base else str(task_dir)
        outputs = _outputs(planned.component, task_dir)
        given = executor_input(inputs, outputs)
        argv = [fill(a, given) for a in list(planned.container.get("command", [])) + list(planned.container.get("args", []))]
        resources = Path(outputs.get("parameters", {}).get("gcp_resources", {}).get("outputFile", task_dir / "outputs" / "gcp_resources"))
        resources.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": tmp,
            "VERTEX_AI_PIPELINES_RUN_LABELS": json.dumps(runner.system_labels()),
            JOB_SERVICE_VARIABLE: self.endpoint(),
        }
        log = str(task_dir / "launcher.log")
        Path(log).write_text("", encoding="utf-8")
        task.log_paths = [log]
        proc = self.server().spawn(self.command(argv), env, str(task_dir), log)
        self._wait(runner, proc)
        name = _job_name(resources)
        job = self.service.jobs.get(name or "")
        if name:
            task.outputs = {"parameterValues": {"gcp_resources": resources.read_text(encoding="utf-8")}}
        if job is not None:
            task.log_paths = [*job.logs, log]
        code = proc.returncode
        if runner.stopping or (job is not None and job.state == "JOB_STATE_CANCELLED"):
            runner.set_state(task, "CANCELLED", exit_code=None, error="the run was interrupted" if runner.stopping else f"its CustomJob {name} was cancelled")
        elif code == 0:
            runner.set_state(task, "SUCCEEDED", exit_code=0)
        elif job is not None and job.state in ENDED and job.resource.get("error"):
            error = job.resource["error"]
            runner.set_state(task, "FAILED", exit_code=code, error=f"CustomJob {name} ended {job.state}: {error.get('message', '')}")
        else:
            runner.set_state(task, "FAILED", exit_code=code, error=f"gcpc's CustomJob launcher failed ({exit_reason(code)}); last lines of {log}:\n{tail(log)}")

    def _wait(self, runner: "LocalRunner", proc: object) -> None:
        """Until the launcher ends; once the run stops, its jobs are cancelled and the
        launcher, given time to see that, is killed."""
        stopped_at: Optional[float] = None
        while proc.poll() is None:  # type: ignore[attr-defined]
            if runner.stopping and stopped_at is None:
                stopped_at = time.monotonic()
                self.service.cancel_run(runner.system_labels()["vertex-ai-pipelines-run-billing-id"])
            if stopped_at is not None and time.monotonic() - stopped_at > KILL_GRACE_S + 2:
                signal_session(proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
            try:
                proc.wait(timeout=0.1)  # type: ignore[attr-defined]
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
