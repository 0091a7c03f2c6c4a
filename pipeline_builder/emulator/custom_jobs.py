"""The Vertex AI JobService's CustomJob calls, emulated: create, get, list and cancel.

What gcpc's launcher and `aiplatform.CustomJob` send to Vertex's REST API. A created job is
parsed strictly as aiplatform's CustomJob (an unknown field is a 400 with the proto's
error), then runs here: its replicas start as local mode starts a trial's
(local.replicas), supervised as its processes are (local.processes), in the emulator's
working directory, /gcs/ being the emulator's view of the buckets. It goes PENDING, RUNNING, then
SUCCEEDED, FAILED (a replica's exit code, or `scheduling.timeout`) or CANCELLED (a cancel
stops its processes' sessions). A fault plan (faults) may refuse its creation or fail it
as Vertex fails jobs: before it runs, or by preempting its replicas. Each job is saved as `customJobs/ID.json` when its state
changes, so a restarted emulator still lists it; one that had not ended comes back FAILED.

gcpc's launcher polls GetCustomJob every 20 s. A GET from it (its user agent names
google-cloud-pipeline-components) of a job that has not ended is answered when the job
ends (or after a minute), so a trial does not wait out a poll interval here; every other
GET is answered at once.
"""

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import rfc3339

from ..cloud.states import JOB_ENDED, JobState
from ..local.interpreter import TaskInterpreter
from ..local.processes import Outcome, Supervisor, exit_reason, tail
from ..local.replicas import ReplicaLaunch, job_output_dir, launch_replicas, parse_duration
from .bodies import display_name_refusal
from .faults import Fault, FaultKind, Faults, Preemption
from .job_store import UNAVAILABLE
from .replies import Reply, error_reply

_PATH = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/customJobs(?:/([0-9]+))?(:cancel)?$")
_OUTPUT_ONLY = ("name", "state", "createTime", "startTime", "endTime", "updateTime", "error", "webAccessUris")
_HOLD_S = 60.0  # the longest a launcher's GET is held
_PAGE_SIZE = 100
STOPPED = "The emulator stopped while this job ran: its processes were stopped."
CANCELLED_MESSAGE = "CustomJob was cancelled."
BILLING_LABEL = "vertex-ai-pipelines-run-billing-id"  # names a job's pipeline run


ENDED = JOB_ENDED


def parse_custom_job(body: Any) -> Any:
    """`body` as aiplatform's CustomJob proto, strictly (unknown fields and bad values
    raise json_format.ParseError with protobuf's text)."""
    from google.cloud.aiplatform_v1.types import CustomJob
    from google.protobuf import json_format

    return json_format.ParseDict(body, CustomJob.pb(CustomJob()), ignore_unknown_fields=False)


def _parts(path: str) -> Tuple[str, str, Optional[str], Optional[str]]:
    """Project, location, job id and `:cancel` of a path `JobService.matches`."""
    match = _PATH.match(path)
    assert match is not None, "a path JobService.matches"
    project, location, job_id, cancel = match.groups()
    return project, location, job_id, cancel


class CustomJob:
    """One job: its REST resource and, while it runs, its processes' supervisor."""

    def __init__(self, resource: Dict[str, Any]) -> None:
        self.resource = resource
        self.supervisor: Optional[Supervisor] = None
        self.logs: List[str] = []  # its replicas' log files, chief first
        self.changed = threading.Condition()

    @property
    def name(self) -> str:
        return self.resource["name"]

    @property
    def state(self) -> str:
        return self.resource["state"]

    @property
    def job_id(self) -> str:
        return self.name.rsplit("/", 1)[1]

    def view(self) -> Dict[str, Any]:
        with self.changed:
            return json.loads(json.dumps(self.resource))


class JobService:
    """The CustomJobs of one emulator, kept in `folder`. Their processes start in
    `workdir` (the image's working directory) from `interpreter` (its paths: the
    emulator's view of the buckets)."""

    def __init__(self, folder: Path, workdir: str, interpreter: TaskInterpreter, faults: Optional[Faults] = None) -> None:
        self.folder = folder
        self.faults = faults  # injected failures (faults), None: none
        self.workdir = workdir
        self.interpreter = interpreter
        self.jobs: Dict[str, CustomJob] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: List[threading.Thread] = []
        # Pipeline runs that were cancelled: a job their launchers create later is cancelled.
        self._cancelled_runs: set = set()
        self._load()
        self._ids = iter(range(max([int(self.time_id())] + [int(n.rsplit("/", 1)[1]) + 1 for n in self.jobs]), 1 << 62))

    @staticmethod
    def time_id() -> int:
        return int(time.time() * 1000) * 1000

    # ---- REST --------------------------------------------------------------------------

    @staticmethod
    def matches(path: str) -> bool:
        return _PATH.match(path) is not None

    def kind(self, method: str, path: str) -> str:
        _, _, job_id, cancel = _parts(path)
        return (
            "custom_job_cancel"
            if cancel
            else "custom_job_get"
            if job_id and method == "GET"
            else "custom_job_create"
            if method == "POST"
            else "custom_job_list"
        )

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any, from_launcher: bool = False) -> Reply:
        project, location, job_id, cancel = _parts(path)
        parent = f"projects/{project}/locations/{location}"
        if cancel and method == "POST":
            return self.cancel(f"{parent}/customJobs/{job_id}")
        if job_id and method == "GET":
            job = self.jobs.get(f"{parent}/customJobs/{job_id}")
            if job is None:
                return error_reply(404, "NOT_FOUND", f"CustomJob {parent}/customJobs/{job_id} not found")
            if from_launcher:
                self._hold(job)
            return 200, job.view()
        if job_id is None and method == "POST":
            return self.create(parent, body)
        if job_id is None and method == "GET":
            return self.list(parent, query)
        return error_reply(405, "UNIMPLEMENTED", f"{method} {path} is not a JobService call")

    def create(self, parent: str, body: Any) -> Reply:
        from google.protobuf import json_format

        if not isinstance(body, dict):
            return error_reply(400, "INVALID_ARGUMENT", "the body must be a CustomJob object")
        given = {k: v for k, v in body.items() if k not in _OUTPUT_ONLY}
        try:
            job = parse_custom_job(given)
        except json_format.ParseError as e:
            return error_reply(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {e}")
        if not job.display_name:
            return error_reply(400, "INVALID_ARGUMENT", "CustomJob.display_name is required")
        too_long = display_name_refusal("CustomJob.display_name", job.display_name)
        if too_long is not None:
            return too_long
        if not job.job_spec.worker_pool_specs or not job.job_spec.worker_pool_specs[0].replica_count:
            return error_reply(
                400, "INVALID_ARGUMENT", "CustomJob.job_spec.worker_pool_specs[0] (the chief) needs a replica_count of 1"
            )
        refused, fault = (
            self.faults.on_create(json_format.MessageToDict(job), parent.split("/")[3]) if self.faults else (None, None)
        )
        if refused is not None:
            return error_reply(*refused)
        with self._lock:
            if self._stopping.is_set():
                return error_reply(503, "UNAVAILABLE", "the emulator is stopping")
            name = f"{parent}/customJobs/{next(self._ids)}"
            stamp = rfc3339()
            resource = {
                **json_format.MessageToDict(job),
                "name": name,
                "state": JobState.PENDING,
                "createTime": stamp,
                "updateTime": stamp,
            }
            custom_job = self.jobs[name] = CustomJob(resource)
            run_id = resource.get("labels", {}).get(BILLING_LABEL)
            cancelled = run_id is not None and run_id in self._cancelled_runs
            self._save(custom_job)
            thread = threading.Thread(target=self._run, args=(custom_job, job, cancelled, fault), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return 200, custom_job.view()

    def list(self, parent: str, query: Mapping[str, List[str]]) -> Reply:
        """Oldest first; `filter` is not applied (every job of the parent is listed)."""
        try:
            start = int((query.get("pageToken") or ["0"])[0] or 0)
            size = int((query.get("pageSize") or ["0"])[0] or 0) or _PAGE_SIZE
        except ValueError:
            return error_reply(400, "INVALID_ARGUMENT", "pageToken and pageSize must be numbers given by this service")
        mine = [j for j in list(self.jobs.values()) if j.name.startswith(parent + "/")]
        reply: Dict[str, Any] = {"customJobs": [j.view() for j in mine[start : start + size]]}
        if start + size < len(mine):
            reply["nextPageToken"] = str(start + size)
        return 200, reply

    def cancel(self, name: str) -> Reply:
        """CancelCustomJob: the job ends CANCELLED once its processes have stopped."""
        job = self.jobs.get(name)
        if job is None:
            return error_reply(404, "NOT_FOUND", f"CustomJob {name} not found")
        with job.changed:
            if job.state in ENDED:
                return error_reply(400, "FAILED_PRECONDITION", f"Cannot cancel CustomJob {name}: it is in state {job.state}")
            job.resource.update(state=JobState.CANCELLING, updateTime=rfc3339())
            supervisor = job.supervisor
        self._save(job)
        if supervisor is not None:
            threading.Thread(target=supervisor.stop_all, daemon=True).start()
        return 200, {}

    def cancel_run(self, run_id: str) -> None:
        """Cancels every job a pipeline run's launchers created, and any they create later
        (jobs carry the run's `vertex-ai-pipelines-run-billing-id` label)."""
        with self._lock:
            self._cancelled_runs.add(run_id)
        for job in list(self.jobs.values()):
            if job.resource.get("labels", {}).get(BILLING_LABEL) == run_id and job.state not in (*ENDED, JobState.CANCELLING):
                self.cancel(job.name)

    def stop(self, wait: float = 20.0) -> None:
        """Cancels every running job and waits for their processes; they are saved ended,
        saying the emulator stopped."""
        self._stopping.set()
        for job in list(self.jobs.values()):
            if job.state not in ENDED:
                self.cancel(job.name)
        for thread in list(self._threads):
            thread.join(timeout=wait)

    # ---- running -----------------------------------------------------------------------

    def _hold(self, job: CustomJob) -> None:
        deadline = time.monotonic() + _HOLD_S
        with job.changed:
            while job.state not in ENDED and not self._stopping.is_set() and time.monotonic() < deadline:
                job.changed.wait(timeout=1.0)

    def _set(self, job: CustomJob, state: JobState, **fields: Any) -> None:
        with job.changed:
            job.resource.update(state=state, updateTime=rfc3339(), **fields)
            job.changed.notify_all()
        self._save(job)

    def _run(self, job: CustomJob, proto: Any, cancelled: bool, fault: Optional[Fault] = None) -> None:
        from google.protobuf import json_format

        work = self.folder / job.job_id
        tmp = work / "tmp"
        try:
            spec = json_format.MessageToDict(proto, preserving_proto_field_name=True)
            launched = self._launches(spec, job.job_id, work, tmp)
            job.logs = [r.launch.log_path for r in launched]
            with job.changed:
                job.supervisor = supervisor = Supervisor(self.interpreter.python, self.workdir, _Null(), None, None, {})
                cancelled = cancelled or job.state == JobState.CANCELLING
            if cancelled or self._stopping.is_set():
                self._end(job, JobState.CANCELLED, 1, CANCELLED_MESSAGE)
                return
            if fault is not None and fault.rule.kind != FaultKind.PREEMPT:  # it fails before it runs
                self._end(job, JobState.FAILED, fault.error["code"], fault.error["message"])
                return
            with job.changed:
                if job.state == JobState.PENDING:
                    job.resource.update(state=JobState.RUNNING, startTime=rfc3339(), updateTime=rfc3339())
                    job.changed.notify_all()
            self._save(job)
            timeout = spec.get("job_spec", {}).get("scheduling", {}).get("timeout", "")
            preemption = self._preemption(supervisor, fault)
            outcome = supervisor.run([r.launch for r in launched], timeout=parse_duration(timeout))
            preemption.ended.set()
            if preemption.fired and fault is not None and not supervisor.stopping.is_set():
                self._end(job, JobState.FAILED, fault.error["code"], fault.error["message"])
                return
            self._ended(job, supervisor, outcome, timeout, launched)
        except Exception as e:  # the service must answer whatever a job does
            self._end(job, JobState.FAILED, 13, f"{type(e).__name__}: {e}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _preemption(self, supervisor: Supervisor, fault: Optional[Fault]) -> Preemption:
        """Started when `fault` preempts the job; one that never fires otherwise."""
        preempts = fault is not None and fault.rule.kind == FaultKind.PREEMPT and self.faults is not None
        grace = self.faults.plan.preemption_grace if self.faults is not None else 0.0
        preemption = Preemption(supervisor, fault.rule.after if fault is not None else 0.0, grace)
        if preempts:
            preemption.start()
        return preemption

    def _launches(self, spec: Dict[str, Any], job_id: str, work: Path, tmp: Path) -> List[ReplicaLaunch]:
        """The job's replicas, logging into its output folder (or `work`), with `tmp` as TMPDIR."""
        output_dir = job_output_dir(spec.get("job_spec", {}), self.interpreter.paths, str(work))
        os.makedirs(output_dir, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return launch_replicas(spec, job_id, self.interpreter, str(tmp), output_dir, owner=spec.get("display_name", job_id))

    def _ended(
        self, job: CustomJob, supervisor: Supervisor, outcome: Outcome, timeout: str, launched: Sequence[ReplicaLaunch]
    ) -> None:
        """Ends the job as its processes ended: cancelled, stopped, timed out, or by their exit codes."""
        if job.state == JobState.CANCELLING or supervisor.stopping.is_set() or self._stopping.is_set():
            if self._stopping.is_set() and job.state != JobState.CANCELLING:
                self._end(job, JobState.FAILED, UNAVAILABLE, STOPPED)
            else:
                self._end(job, JobState.CANCELLED, 1, CANCELLED_MESSAGE)
        elif outcome.timed_out:
            # Vertex fails a job that runs past job_spec.scheduling.timeout (DEADLINE_EXCEEDED).
            self._end(job, JobState.FAILED, 4, f"The job ran past its timeout of {timeout} (scheduling.timeout) and was stopped.")
        elif all(c == 0 for c in outcome.codes):
            self._end(job, JobState.SUCCEEDED)
        else:
            code, log = outcome.codes[0], outcome.logs[0]
            replica = next(r.replica for r in launched if r.launch.log_path == log)
            exited = f"The replica {replica.name} exited with a non-zero status of {code} ({exit_reason(code)})."
            message = f"{exited} Last lines of {log}:\n{tail(log)}"
            self._end(job, JobState.FAILED, 3, message)

    def _end(self, job: CustomJob, state: JobState, code: int = 0, message: str = "") -> None:
        fields: Dict[str, Any] = {"endTime": rfc3339()}
        if code:
            fields["error"] = {"code": code, "message": message}
        self._set(job, state, **fields)

    # ---- on disk -----------------------------------------------------------------------

    def _save(self, job: CustomJob) -> None:
        with job.changed:
            data = strict_json.dumps(job.resource)
        write_atomic(self.folder / f"{job.job_id}.json", data)

    def _load(self) -> None:
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                job = CustomJob(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                print(f"emulator: CustomJob {path.stem} is not loaded, its file is unreadable: {e}")
                continue
            if job.state not in ENDED:
                cancelling = job.state == JobState.CANCELLING
                job.resource.update(
                    state=JobState.CANCELLED if cancelling else JobState.FAILED,
                    error={"code": UNAVAILABLE, "message": STOPPED},
                    endTime=job.resource.get("endTime") or rfc3339(),
                    updateTime=rfc3339(),
                )
                self._save(job)
            self.jobs[job.name] = job
        self.jobs = dict(sorted(self.jobs.items(), key=lambda item: int(item[0].rsplit("/", 1)[1])))


class _Null:
    """A console for the supervisor: a job's replicas log to their files only."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
