"""The CustomJob Vertex would receive for a task, made by google-cloud-pipeline-components' own code.

On Vertex a CustomTrainingJobOp task runs gcpc's launcher
(`google_cloud_pipeline_components.container.v1.custom_job.launcher`): it parses its
arguments, pastes the system labels into the `--payload` JSON
(`remote_runner.insert_system_labels_into_payload`), then `JobRemoteRunner.create_job`
parses it again, drops empty values (`json_util.recursive_remove_empty`: an empty `{}`
worker pool disappears and the pools after it shift) and calls
`remote_runner.create_custom_job_with_client`, which clears `max_wait_duration` unless the
strategy is FLEX_START and hands the dict to the JobService client. Here the same
functions run, from the installed gcpc, with a stand-in client that does what the real
one does with the dict (a `CreateCustomJobRequest`) and then parses it strictly into
aiplatform's `CustomJob` (json_format, unknown fields refused). A payload that gcpc or the
proto rejects is rejected here with the same error text.

gcpc and aiplatform take about half a second to import, and the launcher's own process must
not import aiplatform at all: the work happens in one helper process per run, which imports
them once while the runner starts and answers one request per task. A local run keeps the
verdicts on disk (check_cache): a run whose checks are all stored starts no helper.
"""

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Optional, Sequence

from .check_cache import CheckCache
from .helper_process import HelperEnded, HelperProcess

# The variable through which Vertex passes a run's system labels to gcpc (gcp_labels_util.py).
SYSTEM_LABELS_VARIABLE = "VERTEX_AI_PIPELINES_RUN_LABELS"


class CustomJobRejected(Exception):
    """gcpc's launcher or the CustomJob proto refused the task's payload."""


# ---- in the helper process --------------------------------------------------------------


def _deferred(name: str) -> None:
    """Registers package `name` so that its own code runs only when a name it defines is
    first asked for; its submodules import as usual meanwhile."""
    import importlib.util

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attribute: str) -> Any:
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, attribute)

    module.__dict__["__getattr__"] = __getattr__  # a module's own __getattr__ (PEP 562)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)


def _import_gcpc() -> Dict[str, Any]:
    """Imports what the launcher's create path uses.

    Two packages are deferred, which saves most of a second: `google.cloud.aiplatform`,
    which `job_remote_runner` imports only to build a JobService client (in
    `JobRemoteRunner.__init__`, which the stand-in replaces), and the `__init__` of
    `google.cloud.aiplatform_v1`, which imports every service client while the check needs
    its types. Either runs in full if anything asks for a name it defines.
    """
    import google.cloud  # noqa: F401

    _deferred("google.cloud.aiplatform")
    _deferred("google.cloud.aiplatform_v1")
    from google.cloud.aiplatform_v1.types import CustomJob, job_service
    from google.protobuf import json_format
    from google_cloud_pipeline_components.container.v1.custom_job import remote_runner
    from google_cloud_pipeline_components.container.v1.gcp_launcher import job_remote_runner
    from google_cloud_pipeline_components.container.v1.gcp_launcher.utils import parser_util

    return {
        "CustomJob": CustomJob,
        "job_service": job_service,
        "json_format": json_format,
        "remote_runner": remote_runner,
        "job_remote_runner": job_remote_runner,
        "parser_util": parser_util,
    }


class _JobClient:
    """Stands for gcpc's JobServiceClient: builds the request as the client does, keeps the job."""

    def __init__(self, gcpc: Dict[str, Any], job_id: str) -> None:
        self.gcpc = gcpc
        self.job_id = job_id
        self.job: Optional[Dict[str, Any]] = None

    def create_custom_job(self, parent: str, custom_job: Dict[str, Any]) -> Any:
        from types import SimpleNamespace

        request = self.gcpc["job_service"].CreateCustomJobRequest(None)  # as JobServiceClient.create_custom_job
        request.parent = parent
        request.custom_job = custom_job
        json_format, CustomJob = self.gcpc["json_format"], self.gcpc["CustomJob"]
        parsed = json_format.ParseDict(custom_job, CustomJob.pb()(), ignore_unknown_fields=False)
        self.job = json_format.MessageToDict(parsed, preserving_proto_field_name=True)
        return SimpleNamespace(name=f"{parent}/customJobs/{self.job_id}")


def vertex_custom_job(gcpc: Dict[str, Any], argv: Sequence[str], labels: str, job_id: str) -> Dict[str, Any]:
    """The CustomJob gcpc's launcher would create for `argv` (its arguments after `-m ...launcher`)."""
    _, args = gcpc["parser_util"].parse_default_args(list(argv))
    if args.type != "CustomJob":
        raise ValueError("Incorrect job type: " + args.type)  # as launcher.main
    os.environ[SYSTEM_LABELS_VARIABLE] = labels
    payload = gcpc["remote_runner"].insert_system_labels_into_payload(args.payload)
    runner_class = gcpc["job_remote_runner"].JobRemoteRunner
    runner = runner_class.__new__(runner_class)  # its __init__ only builds the real client
    client = _JobClient(gcpc, job_id)
    runner.__dict__.update(
        job_type="CustomJob",
        project=args.project,
        location=args.location,
        gcp_resources=args.gcp_resources,
        job_client=client,
        job_uri_prefix=f"https://{args.location}-aiplatform.googleapis.com/v1/",
    )
    name = runner.create_job(gcpc["remote_runner"].create_custom_job_with_client, payload)
    return {"name": name, "job": client.job}


def serve() -> None:
    """The helper's loop: one JSON request per line on stdin, one reply per line."""
    import traceback

    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything the libraries print stays out of the replies
    try:
        gcpc: Optional[Dict[str, Any]] = _import_gcpc()
        broken = ""
    except Exception as e:  # every request gets the reason
        gcpc, broken = None, f"google-cloud-pipeline-components could not be imported: {e}"
    for line in sys.stdin:
        request = json.loads(line)
        reply: Dict[str, Any] = {"id": request["id"]}
        if gcpc is None:
            reply.update(error=broken, unchecked=True)  # no verdict: never stored
        else:
            try:
                reply.update(vertex_custom_job(gcpc, request["argv"], request["labels"], request["job_id"]))
            except (Exception, SystemExit) as e:
                reply["error"] = traceback.format_exception_only(type(e), e)[-1].strip()
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    os._exit(0)  # nothing to tear down: skip the interpreter's slow exit with these libraries loaded


# ---- in the runner ----------------------------------------------------------------------


class CustomJobChecker:
    """The runner's side of the helper; safe to use from several task threads at once.

    With a `cache` (check_cache), a check whose verdict is stored is answered from it, and
    the helper starts only for a check that misses, unless `eager` (the default; False
    when the cache expects every check of the run to hit) starts it at once, so that its
    imports overlap with the caller's work."""

    def __init__(
        self,
        python: str = sys.executable,
        env: Optional[Dict[str, str]] = None,
        cache: Optional[CheckCache] = None,
        eager: bool = True,
    ) -> None:
        self.python = python
        self.env = env
        self.cache = cache
        self._helper: Optional[HelperProcess] = None
        self._lock = threading.Lock()
        self.checked = 0  # checks answered by the helper
        self.wait_s = 0.0  # time the checks waited for it, its imports included
        self.cpu_s: Optional[float] = None  # the helper's CPU time, once it is closed
        if eager:
            self._start()

    def _start(self) -> HelperProcess:
        with self._lock:
            if self._helper is None:
                code = "from hydra_vertex_pipelines.pipeline_builder.local.gcpc_check import serve; serve()"
                # In this install's folder, not the project's: a module there could shadow what the helper imports.
                here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                self._helper = HelperProcess([self.python, "-c", code], cwd=here, env=self.env, stderr=subprocess.DEVNULL)
            return self._helper

    @property
    def helper(self) -> HelperProcess:
        """The helper process, started now if it has not been."""
        return self._start()

    @property
    def started(self) -> bool:
        return self._helper is not None

    def check(self, argv: Sequence[str], labels: Dict[str, str], job_id: str) -> Dict[str, Any]:
        """{"name": the job's resource name, "job": the CustomJob as a dict}; raises
        CustomJobRejected with gcpc's or protobuf's error text, RuntimeError if the helper died."""
        reply = self.cache.get(argv, labels, job_id) if self.cache is not None else None
        if reply is None:
            reply = self._ask(argv, labels, job_id)
            if self.cache is not None and not reply.get("unchecked"):
                self.cache.put(argv, labels, job_id, reply)
        if "error" in reply:
            raise CustomJobRejected(reply["error"])
        return reply

    def _ask(self, argv: Sequence[str], labels: Dict[str, str], job_id: str) -> Dict[str, Any]:
        """The helper's reply for one check."""
        started = time.perf_counter()
        helper = self.helper
        try:
            ident = helper.send({"argv": list(argv), "labels": json.dumps(labels), "job_id": job_id})
        except OSError:
            reply = None
        else:
            try:
                reply = helper.reply(ident)
            except HelperEnded:
                reply = None
            helper.forget(ident)
        with self._lock:
            self.checked += 1
            self.wait_s += time.perf_counter() - started
        if reply is None:
            raise RuntimeError(f"the CustomJob check helper ended (exit code {helper.proc.poll()}) before it answered")
        return {k: v for k, v in reply.items() if k != "id"}

    def close(self) -> None:
        with self._lock:
            helper = self._helper
        if helper is not None:
            helper.close(timeout=5)
            self.cpu_s = helper.cpu_s
        if self.cache is not None:
            self.cache.remember_sweep()
