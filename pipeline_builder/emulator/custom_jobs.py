"""The Vertex AI JobService's CustomJob calls, emulated: create, get, list and cancel.

What gcpc's launcher and `aiplatform.CustomJob` send to Vertex's REST API. A created job is
parsed strictly as aiplatform's CustomJob (an unknown field is a 400 with the proto's
error), then runs here: its replicas start with the local runner's process supervision
(local_processes) and Vertex's environment (custom_job_env), in the emulator's working
directory, /gcs/ being the emulator's view of the buckets. It goes PENDING, RUNNING, then
SUCCEEDED, FAILED (a replica's exit code, or `scheduling.timeout`) or CANCELLED (a cancel
stops its processes' sessions). Each job is saved as `customJobs/ID.json` when its state
changes, so a restarted emulator still lists it; one that had not ended comes back FAILED.

gcpc's launcher polls GetCustomJob every 20 s. A GET from it (its user agent names
google-cloud-pipeline-components) of a job that has not ended is answered when the job
ends (or after a minute), so a trial does not wait out a poll interval here; every other
GET is answered at once.
"""

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from hydra_vertex_pipelines.components.sweep_files import LOG_FILE

from ..spec.cloud_paths import PathMap
from .job_store import UNAVAILABLE, now
from ..local.processes import Launch, Supervisor, exit_reason, tail

_PATH = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/customJobs(?:/([0-9]+))?(:cancel)?$")
ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
_OUTPUT_ONLY = ("name", "state", "createTime", "startTime", "endTime", "updateTime", "error", "webAccessUris")
_HOLD_S = 60.0  # the longest a launcher's GET is held
_PAGE_SIZE = 100
STOPPED = "The emulator stopped while this job ran: its processes were stopped."
Reply = Tuple[int, Any]


def _error(code: int, status: str, message: str) -> Reply:
    return code, {"error": {"code": code, "message": message, "status": status}}


def parse_custom_job(body: Any) -> Any:
    """`body` as aiplatform's CustomJob proto, strictly (unknown fields and bad values
    raise json_format.ParseError with protobuf's text)."""
    from google.cloud.aiplatform_v1.types import CustomJob
    from google.protobuf import json_format

    return json_format.ParseDict(body, CustomJob.pb(CustomJob()), ignore_unknown_fields=False)


def _seconds(duration: str) -> Optional[float]:
    """A Duration's JSON text ("3600s") in seconds; None when unset."""
    return float(duration[:-1]) if duration.endswith("s") else None


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

    def view(self) -> Dict[str, Any]:
        with self.changed:
            return json.loads(json.dumps(self.resource))


class JobService:
    """The CustomJobs of one emulator. `run_replicas(job, spec)` runs a job's processes
    and returns (state, error or None); the emulator gives it its paths and environment."""

    def __init__(
        self, folder: Path, paths: PathMap, workdir: str, env: Callable[[str], Dict[str, str]], python: str, site_dir: str = ""
    ) -> None:
        self.folder = folder
        self.site_dir = site_dir  # the sitecustomize that routes /gcs/, for a package pool's fresh environment
        self.paths = paths
        self.workdir = workdir
        self.env = env  # the base environment of a job's processes, given its TMPDIR
        self.python = python
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
        project, location, job_id, cancel = _PATH.match(path).groups()  # type: ignore[union-attr]
        return "custom_job_cancel" if cancel else "custom_job_get" if job_id and method == "GET" else "custom_job_create" if method == "POST" else "custom_job_list"

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any, from_launcher: bool = False) -> Reply:
        project, location, job_id, cancel = _PATH.match(path).groups()  # type: ignore[union-attr]
        parent = f"projects/{project}/locations/{location}"
        if cancel and method == "POST":
            return self.cancel(f"{parent}/customJobs/{job_id}")
        if job_id and method == "GET":
            job = self.jobs.get(f"{parent}/customJobs/{job_id}")
            if job is None:
                return _error(404, "NOT_FOUND", f"CustomJob {parent}/customJobs/{job_id} not found")
            if from_launcher:
                self._hold(job)
            return 200, job.view()
        if job_id is None and method == "POST":
            return self.create(parent, body)
        if job_id is None and method == "GET":
            return self.list(parent, query)
        return _error(405, "UNIMPLEMENTED", f"{method} {path} is not a JobService call")

    def create(self, parent: str, body: Any) -> Reply:
        from google.protobuf import json_format

        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "the body must be a CustomJob object")
        given = {k: v for k, v in body.items() if k not in _OUTPUT_ONLY}
        try:
            job = parse_custom_job(given)
        except json_format.ParseError as e:
            return _error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {e}")
        if not job.display_name:
            return _error(400, "INVALID_ARGUMENT", "CustomJob.display_name is required")
        if not job.job_spec.worker_pool_specs or not job.job_spec.worker_pool_specs[0].replica_count:
            return _error(400, "INVALID_ARGUMENT", "CustomJob.job_spec.worker_pool_specs[0] (the chief) needs a replica_count of 1")
        with self._lock:
            if self._stopping.is_set():
                return _error(503, "UNAVAILABLE", "the emulator is stopping")
            name = f"{parent}/customJobs/{next(self._ids)}"
            stamp = now()
            resource = {**json_format.MessageToDict(job), "name": name, "state": "JOB_STATE_PENDING", "createTime": stamp, "updateTime": stamp}
            custom_job = self.jobs[name] = CustomJob(resource)
            run_id = resource.get("labels", {}).get("vertex-ai-pipelines-run-billing-id")
            cancelled = run_id is not None and run_id in self._cancelled_runs
            self._save(custom_job)
            thread = threading.Thread(target=self._run, args=(custom_job, job, cancelled), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return 200, custom_job.view()

    def list(self, parent: str, query: Mapping[str, List[str]]) -> Reply:
        """Oldest first; `filter` is not applied (every job of the parent is listed)."""
        try:
            start = int((query.get("pageToken") or ["0"])[0] or 0)
            size = int((query.get("pageSize") or ["0"])[0] or 0) or _PAGE_SIZE
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "pageToken and pageSize must be numbers given by this service")
        mine = [j for j in list(self.jobs.values()) if j.name.startswith(parent + "/")]
        reply: Dict[str, Any] = {"customJobs": [j.view() for j in mine[start : start + size]]}
        if start + size < len(mine):
            reply["nextPageToken"] = str(start + size)
        return 200, reply

    def cancel(self, name: str) -> Reply:
        """CancelCustomJob: the job ends CANCELLED once its processes have stopped."""
        job = self.jobs.get(name)
        if job is None:
            return _error(404, "NOT_FOUND", f"CustomJob {name} not found")
        with job.changed:
            if job.state in ENDED:
                return _error(400, "FAILED_PRECONDITION", f"Cannot cancel CustomJob {name}: it is in state {job.state}")
            job.resource.update(state="JOB_STATE_CANCELLING", updateTime=now())
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
            if job.resource.get("labels", {}).get("vertex-ai-pipelines-run-billing-id") == run_id and job.state not in ENDED + ("JOB_STATE_CANCELLING",):
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

    def _set(self, job: CustomJob, state: str, **fields: Any) -> None:
        with job.changed:
            job.resource.update(state=state, updateTime=now(), **fields)
            job.changed.notify_all()
        self._save(job)

    def _run(self, job: CustomJob, proto: Any, cancelled: bool) -> None:
        from google.protobuf import json_format

        from ..local.vertex_env import cluster_ports, job_environment, replica_counts, replica_environment, replicas
        from ..local.tasks import _pool_command

        job_id = job.name.rsplit("/", 1)[1]
        work = self.folder / job_id
        tmp = work / "tmp"
        try:
            spec = json_format.MessageToDict(proto, preserving_proto_field_name=True)
            job_spec = spec.get("job_spec", {})
            counts = replica_counts(job_spec)
            base = job_spec.get("base_output_directory", {}).get("output_uri_prefix", "")
            output_dir = self.paths.local(base) if base else str(work)
            os.makedirs(output_dir, exist_ok=True)
            tmp.mkdir(parents=True, exist_ok=True)
            ports = cluster_ports(counts)
            env = {**self.env(str(tmp)), **job_environment(spec, job_id)}
            host = _Host(self.paths, self.python, self.site_dir)
            launches = []
            for replica in replicas(job_spec):
                pool_env, command, cwd = _pool_command(host, _Named(spec.get("display_name", job_id)), replica.pool, replica.spec, env)
                first = (replica.pool, replica.index) == (0, 0)
                log = LOG_FILE if first else f"trial-workerpool{replica.pool}-{replica.index}.log"
                replica_env = {**env, **pool_env, **replica_environment(job_spec, counts, replica, ports)}
                launches.append(Launch(command, replica_env, os.path.join(output_dir, log), cwd=cwd))
            job.logs = [launch.log_path for launch in launches]
            with job.changed:
                job.supervisor = supervisor = Supervisor(self.python, self.workdir, _Null(), None, None, {})
                cancelled = cancelled or job.state == "JOB_STATE_CANCELLING"
            if cancelled or self._stopping.is_set():
                self._end(job, "JOB_STATE_CANCELLED", 1, "CustomJob was cancelled.")
                return
            with job.changed:
                if job.state == "JOB_STATE_PENDING":
                    job.resource.update(state="JOB_STATE_RUNNING", startTime=now(), updateTime=now())
                    job.changed.notify_all()
            self._save(job)
            timeout = job_spec.get("scheduling", {}).get("timeout", "")
            outcome = supervisor.run(launches, timeout=_seconds(timeout) if timeout else None)
            if job.state == "JOB_STATE_CANCELLING" or supervisor.stopping.is_set() or self._stopping.is_set():
                stopped = self._stopping.is_set() and job.state != "JOB_STATE_CANCELLING"
                self._end(job, "JOB_STATE_FAILED" if stopped else "JOB_STATE_CANCELLED", UNAVAILABLE if stopped else 1, STOPPED if stopped else "CustomJob was cancelled.")
            elif outcome.timed_out:
                # Vertex fails a job that runs past job_spec.scheduling.timeout (DEADLINE_EXCEEDED).
                self._end(job, "JOB_STATE_FAILED", 4, f"The job ran past its timeout of {timeout} (scheduling.timeout) and was stopped.")
            elif all(c == 0 for c in outcome.codes):
                self._end(job, "JOB_STATE_SUCCEEDED")
            else:
                code, log = outcome.codes[0], outcome.logs[0]
                replica = os.path.basename(log)[len("trial-") : -len(".log")] if "workerpool" in log else "workerpool0-0"
                self._end(job, "JOB_STATE_FAILED", 3, f"The replica {replica} exited with a non-zero status of {code} ({exit_reason(code)}). Last lines of {log}:\n{tail(log)}")
        except Exception as e:  # the service must answer whatever a job does
            self._end(job, "JOB_STATE_FAILED", 13, f"{type(e).__name__}: {e}")
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    def _end(self, job: CustomJob, state: str, code: int = 0, message: str = "") -> None:
        fields: Dict[str, Any] = {"endTime": now()}
        if code:
            fields["error"] = {"code": code, "message": message}
        self._set(job, state, **fields)

    # ---- on disk -----------------------------------------------------------------------

    def _save(self, job: CustomJob) -> None:
        with job.changed:
            data = json.dumps(job.resource)
        path = self.folder / f"{job.name.rsplit('/', 1)[1]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(data, encoding="utf-8")
        os.replace(temporary, path)

    def _load(self) -> None:
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                job = CustomJob(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                print(f"emulator: CustomJob {path.stem} is not loaded, its file is unreadable: {e}")
                continue
            if job.state not in ENDED:
                cancelling = job.state == "JOB_STATE_CANCELLING"
                job.resource.update(
                    state="JOB_STATE_CANCELLED" if cancelling else "JOB_STATE_FAILED",
                    error={"code": UNAVAILABLE, "message": STOPPED},
                    endTime=job.resource.get("endTime") or now(),
                    updateTime=now(),
                )
                self._save(job)
            self.jobs[job.name] = job
        self.jobs = dict(sorted(self.jobs.items(), key=lambda item: int(item[0].rsplit("/", 1)[1])))


class _Host:
    """What local_tasks' pool command needs of a runner."""

    def __init__(self, paths: PathMap, python: str, site_dir: str) -> None:
        self.paths, self.python, self.site_dir = paths, python, site_dir


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class _Null:
    """A console for the supervisor: a job's replicas log to their files only."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
