"""The PipelineJobs service of the emulator: create, get, list and cancel, with task details.

Each created job's spec runs with the local runner, in the job's folder of the data dir:
gs:// data is copied to and from the Cloud Storage emulator around each task, and steps
already done are cached, as on Vertex (sync); each CustomJob task runs gcpc's real
launcher against the emulator's JobService (launcher_tasks). Jobs are saved as their
state changes (job_store), so a restarted emulator still answers for them.
"""

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set

from hydra_vertex_pipelines.components.clock import rfc3339

from ..local.plan import FINAL_STATES, TaskKind, TaskRun, TaskState, UnsupportedPipeline
from ..local.resolver import RunContext
from ..local.runner import LocalRunner
from ..local.settings import RunnerSettings
from ..spec.cloud_paths import PathMap
from .bodies import display_name_refusal
from .custom_jobs import BILLING_LABEL, JobService
from .job_store import ENDED, JobStore, interrupted
from .launcher_tasks import LauncherTasks
from .metadata import MetadataService
from .replies import Reply, error_reply
from .states import PIPELINE_END_STATES, TASK_DETAIL_STATES, PipelineState
from .storage import own_client
from .sync import Cache, StorageSync

PATH = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/pipelineJobs(?:/([^/:]+))?(:cancel)?$")
# Vertex's rule for pipelineJobId: fewer than 128 of a-z, 0-9 and '-'. It names a folder here.
_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,126}$")


class PipelineRun:
    """One PipelineJob: its resource and the local run behind it, or, once it has ended
    in an earlier emulator, the task details it ended with."""

    def __init__(
        self, resource: Dict[str, Any], context: Optional[Dict[str, Any]] = None, tasks: Optional[List[Dict[str, Any]]] = None
    ) -> None:
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
            state = TaskState.RUNNING
        detail: Dict[str, Any] = {
            "taskId": str(self.task_ids.setdefault(task.name, 1000 + len(self.task_ids))),
            "taskName": task.name,
            "state": TASK_DETAIL_STATES[state],
        }
        if task.start_time:
            detail["startTime"] = rfc3339(task.start_time)
        if task.end_time and state != TaskState.RUNNING:
            detail["endTime"] = rfc3339(task.end_time)
        if task.error and state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED):
            detail["error"] = {"code": 9 if task.state == TaskState.FAILED else 1, "message": task.error}
        resources = task.outputs.get("parameterValues", {}).get("gcp_resources") if task.kind == TaskKind.CUSTOM_JOB else None
        if resources and "/v1/" in resources:  # the job gcpc's launcher created
            job = json.loads(resources)["resources"][0]["resourceUri"].split("/v1/", 1)[1]
            detail["executorDetail"] = {"customJobDetail": {"job": job}}
        return detail


class PipelineJobs:
    """The service's jobs, run with `max_parallel` tasks at once each, their commands
    started in `workdir` (the image's working directory), /gcs/ being `buckets`."""

    def __init__(
        self,
        store: JobStore,
        buckets: Path,
        metadata: MetadataService,
        job_service: JobService,
        launchers: LauncherTasks,
        cache: Cache,
        workdir: str,
        max_parallel: Optional[int],
    ) -> None:
        self.store = store
        self.buckets = buckets
        self.metadata = metadata
        self.job_service = job_service
        self.launchers = launchers
        self.cache = cache
        self.workdir = workdir
        self.max_parallel = max_parallel
        self.runs: Dict[str, PipelineRun] = {j.job_id: PipelineRun(j.resource, j.context, j.tasks) for j in store.load()}
        # Display names of the CustomJobs started, in order (cache hits start none).
        self.custom_jobs: List[str] = []
        self.faults: Counter = Counter()  # e.g. {"drop_create_response": 1}, for tests of retries
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: List[threading.Thread] = []

    @staticmethod
    def kind(method: str, path: str) -> Optional[str]:
        """Which call a request is (create, get, list, cancel); None: not one of this service's."""
        match = PATH.match(path)
        if match is None:
            return None
        _, _, job_id, cancel = match.groups()
        return "cancel" if cancel else "get" if job_id and method == "GET" else "create" if method == "POST" else "list"

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any) -> Reply:
        match = PATH.match(path)
        assert match is not None, "handle() takes the paths kind() names"
        project, location, job_id, _ = match.groups()
        kind = self.kind(method, path)
        if kind == "create":
            return self.create(project, location, query.get("pipelineJobId", [None])[0], body or {})
        if kind == "list":
            return 200, {
                "pipelineJobs": [r.view() for r in list(self.runs.values()) if r.resource["name"].split("/")[1] == project]
            }
        run = self.runs.get(job_id or "")
        if run is None:
            return error_reply(404, "NOT_FOUND", f"PipelineJob {job_id} not found")
        if kind == "cancel":
            self.cancel(run)
            return 200, {}
        return 200, run.view()

    def create(self, project: str, location: str, job_id: Optional[str], body: Dict[str, Any]) -> Reply:
        job_id = job_id or f"job-{int(time.time() * 1000)}"
        if not _JOB_ID.match(job_id):
            return error_reply(
                400, "INVALID_ARGUMENT", f"pipelineJobId {job_id!r}: fewer than 128 of a-z, 0-9 and '-', not starting with '-'"
            )
        if not isinstance(body, dict):
            return error_reply(400, "INVALID_ARGUMENT", "the body must be a PipelineJob object")
        too_long = display_name_refusal("PipelineJob.display_name", body.get("displayName"))
        if too_long is not None:
            return too_long
        with self._lock:
            if self._stopping.is_set():
                return error_reply(503, "UNAVAILABLE", "the emulator is stopping")
            if job_id in self.runs:
                return error_reply(409, "ALREADY_EXISTS", f"PipelineJob {job_id} already exists")
            name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
            resource = {**body, "name": name, "state": PipelineState.PENDING, "createTime": rfc3339(), "updateTime": rfc3339()}
            store = f"projects/{project}/locations/{location}/metadataStores/default"
            context = self.metadata.create(store, job_id, {"displayName": job_id, "schemaTitle": "system.PipelineRun"})
            run = self.runs[job_id] = PipelineRun(resource, context)
            self.store.save(job_id, resource, context)
            drop = self.faults["drop_create_response"] > 0
            if drop:
                self.faults["drop_create_response"] -= 1
            thread = threading.Thread(target=self._execute, args=(run,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return (0, None) if drop else (200, run.view())

    def cancel(self, run: PipelineRun) -> None:
        with run.lock:
            if run.resource["state"] in ENDED:
                return
            run.resource["state"] = PipelineState.CANCELLING
            run.resource["updateTime"] = rfc3339()
            runner = run.runner
        self._save(run)
        if runner is not None:
            # Its CustomJobs first, through the JobService's cancel, then its tasks.
            self.job_service.cancel_run(runner.system_labels()[BILLING_LABEL])
            runner.cancel()

    def stop(self) -> List[threading.Thread]:
        """Takes no more jobs; returns a thread per running run that stops it, started,
        and the runs' own threads, for the caller to wait for."""
        with self._lock:  # no job is created after this, and every started one is in _threads
            self._stopping.set()
            threads = list(self._threads)
        live = [r.runner for r in list(self.runs.values()) if r.runner is not None and r.resource["state"] not in ENDED]
        cancels = [threading.Thread(target=runner.cancel) for runner in live]
        for thread in cancels:
            thread.start()
        return cancels + threads

    # ---- running -----------------------------------------------------------------------

    def _set_state(self, run: PipelineRun, state: PipelineState, **fields: Any) -> None:
        with run.lock:
            run.resource.update(state=state, updateTime=rfc3339(), **fields)
        self._save(run)

    def _save(self, run: PipelineRun) -> None:
        with run.lock:
            resource, tasks = dict(run.resource), run.task_details()
            if tasks is not None:
                self.store.save_tasks(run.job_id, tasks, ended=resource["state"] in ENDED)
        self.store.save(run.job_id, resource, run.context)

    def _task_changed(self, run: PipelineRun, task: TaskRun, synced: bool = False) -> None:
        with run.lock:
            if synced:
                run.synced.add(task.name)
            self.store.task_changed(run.job_id, run.task(task))

    def _runner(self, run: PipelineRun, console: Any) -> LocalRunner:
        """The local run of a job's spec, in its folder, one view of the buckets for every
        run (as the FUSE mount is one view of them: a resumed run's collector finds the
        cached trials' results of earlier runs)."""
        hooks = StorageSync(
            own_client(), self.buckets, self.cache, self.custom_jobs, lambda task: self._task_changed(run, task, synced=True)
        )
        settings = RunnerSettings(
            paths=PathMap(str(self.buckets)),
            work_dir=self.store.folder(run.job_id) / "work",
            max_parallel=self.max_parallel,
            cwd=self.workdir,
            context=_context(run.resource),
        )
        return LocalRunner(
            run.resource["pipelineSpec"],
            settings,
            console=console,
            hooks=hooks,
            on_change=lambda task: self._task_changed(run, task),
            custom_job_handler=self.launchers,
        )

    def _execute(self, run: PipelineRun) -> None:
        work = self.store.folder(run.job_id)
        work.mkdir(parents=True, exist_ok=True)
        console = open(work / "console.log", "w", encoding="utf-8")  # what a person would see in Cloud Logging
        try:
            runner = self._runner(run, console)
        except (UnsupportedPipeline, KeyError, ValueError) as e:
            console.close()
            self._set_state(
                run, PipelineState.FAILED, error={"code": 3, "message": f"{type(e).__name__}: {e}"}, endTime=rfc3339()
            )
            return
        with run.lock:
            cancelled = run.resource["state"] == PipelineState.CANCELLING
            run.runner = runner
        if cancelled or self._stopping.is_set():
            runner.cancel()
        else:
            self._set_state(run, PipelineState.RUNNING, startTime=rfc3339())
        try:
            self._finish(run, runner)
        except Exception as e:  # the emulator must answer GETs whatever a run does
            self._set_state(
                run, PipelineState.FAILED, error={"code": 13, "message": f"{type(e).__name__}: {e}"}, endTime=rfc3339()
            )
        finally:
            console.close()

    def _finish(self, run: PipelineRun, runner: LocalRunner) -> None:
        """Runs the job's tasks, then ends the job as they ended."""
        result = runner.run()
        if self._stopping.is_set() and result.state != TaskState.SUCCEEDED:
            self._end_stopped(run)
            return
        state = PIPELINE_END_STATES[result.state]
        fields: Dict[str, Any] = {"endTime": rfc3339()}
        if state == PipelineState.FAILED:
            failed = [t.name for t in result.tasks.values() if t.state == TaskState.FAILED]
            fields["error"] = {
                "code": 9,
                "message": f"The DAG failed because some tasks failed. The failed tasks are: [{', '.join(failed)}].",
            }
        self._set_state(run, state, **fields)

    def _end_stopped(self, run: PipelineRun) -> None:
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
