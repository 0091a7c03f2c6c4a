"""Vertex AI Pipelines: submit a compiled pipeline, follow it, cancel it.

Only submit mode and the status/results/cancel commands come here, so compile and local
modes never import google.cloud.aiplatform (about 2.5 s).
"""

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

from ..errors import ConfigError
from .states import PIPELINE_STOPPED

CREATE_ATTEMPTS = 4
DEFAULT_POLL_INTERVAL = 15.0  # seconds between two polls of a followed run
EMULATOR_POLL_INTERVAL = 1.0  # against an emulator on this machine (plain http)
ADC_HELP = (
    "Set up Application Default Credentials: run `gcloud auth application-default login` "
    "(a person), or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run "
    "where a service account is attached (Compute Engine, Cloud Run, Vertex AI Workbench)"
)


class CredentialsError(RuntimeError):
    """No Google Cloud credentials were found."""


@dataclass(frozen=True)
class VertexTarget:
    """Where PipelineJobs go: a project, a region and, for an emulator, an endpoint."""

    project: str
    location: str
    api_endpoint: Optional[str] = None

    @property
    def emulated(self) -> bool:
        """A plain-http endpoint is a local emulator; real credentials never go over plain http."""
        return bool(self.api_endpoint and self.api_endpoint.startswith("http://"))


def default_project() -> Optional[str]:
    """The project of Application Default Credentials, if any (no request is sent)."""
    try:
        import google.auth

        _, project = google.auth.default()
        return project
    except Exception:
        return None


def credentials(target: VertexTarget) -> Any:
    if target.emulated:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as e:
        raise CredentialsError(f"No Google Cloud credentials: {str(e).rstrip('. ')}. {ADC_HELP}.") from None
    return creds


def credentials_problem(target: VertexTarget) -> str:
    """Why `credentials` would fail ("": it would not), so that one error can say every
    missing setting at once."""
    try:
        credentials(target)
    except CredentialsError as e:
        return str(e)
    return ""


def init(target: VertexTarget, creds: Any = None) -> None:
    from google.cloud import aiplatform

    options: Dict[str, Any] = {"project": target.project, "location": target.location}
    if target.api_endpoint:
        options["api_endpoint"] = target.api_endpoint
        if target.emulated:
            options["api_transport"] = "rest"
    aiplatform.init(credentials=creds if creds is not None else credentials(target), **options)


def console_url(resource_name: str, api_endpoint: Optional[str] = None) -> str:
    """The Vertex AI console page of a PipelineJob (projects/P/locations/L/pipelineJobs/ID);
    against an emulator (a plain-http `api_endpoint`), the job as the emulator serves it."""
    if api_endpoint and api_endpoint.startswith("http://"):
        return f"{api_endpoint.rstrip('/')}/v1/{resource_name}"
    parts = resource_name.split("/")
    project, location, job_id = parts[1], parts[3], parts[5]
    return f"https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/{job_id}?project={project}"


@contextlib.contextmanager
def _emulated_project_number(target: VertexTarget, pipeline_root: str) -> Iterator[None]:
    """Before creating a job, the SDK checks that the pipeline-root bucket belongs to the
    project, asking Cloud Resource Manager, which has no emulator: against an emulator the
    bucket's own project number is the answer."""
    if not target.emulated:
        yield
        return
    from google.cloud.aiplatform.utils import resource_manager_utils

    from . import gcs

    bucket = gcs.client(target.project).lookup_bucket(gcs.split_uri(pipeline_root)[0])
    number = str(bucket.project_number) if bucket is not None else "0"
    original = resource_manager_utils.get_project_number
    resource_manager_utils.get_project_number = lambda *args, **kwargs: number
    try:
        yield
    finally:
        resource_manager_utils.get_project_number = original


def _transient_errors() -> Tuple[Type[Exception], ...]:
    """The failures of a create request that sending it again may cure."""
    import requests
    from google.api_core import exceptions as gexc

    return (
        gexc.ServiceUnavailable,
        gexc.InternalServerError,
        gexc.TooManyRequests,
        gexc.GatewayTimeout,
        gexc.DeadlineExceeded,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        ConnectionError,
    )


def submit(
    target: VertexTarget,
    template_path: str,
    job_id: str,
    display_name: str,
    pipeline_root: str,
    labels: Dict[str, str],
    enable_caching: Optional[bool],
    failure_policy: Optional[str],
    service_account: Optional[str] = None,
    network: Optional[str] = None,
    reserved_ip_ranges: Optional[List[str]] = None,
    experiment: Optional[str] = None,
    encryption_spec_key_name: Optional[str] = None,
    on_retry: Optional[Callable[[Exception], None]] = None,
) -> Any:
    """Creates the PipelineJob `job_id` once, however often the create request must be sent.

    The SDK does not retry a create. A create whose answer was lost may still have made
    the job, so a retry that meets ALREADY_EXISTS adopts that job when its labels match.
    """
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform

    transient = _transient_errors()
    job = aiplatform.PipelineJob(
        display_name=display_name,
        template_path=template_path,
        job_id=job_id,
        pipeline_root=pipeline_root,
        labels=labels,
        enable_caching=enable_caching,
        failure_policy=failure_policy,
        encryption_spec_key_name=encryption_spec_key_name,
    )
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with _emulated_project_number(target, pipeline_root):
                job.submit(
                    service_account=service_account,
                    network=network,
                    reserved_ip_ranges=reserved_ip_ranges or None,
                    experiment=experiment,
                )
            return job
        except gexc.Conflict:
            existing = aiplatform.PipelineJob.get(job_id)
            if dict(existing.labels) != dict(labels):
                raise
            return existing
        except transient as e:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            if on_retry is not None:
                on_retry(e)
            time.sleep(min(2**attempt, 20))
    raise AssertionError("unreachable")


def attach(resource_name: str) -> Any:
    from google.cloud import aiplatform

    return aiplatform.PipelineJob.get(resource_name)


def task_details(job: Any) -> Dict[str, Dict[str, Any]]:
    """Task name -> state, error message and CustomJob, from the last fetched job (no request)."""
    out = {}
    for t in job.gca_resource.job_detail.task_details:
        out[t.task_name] = {
            "state": t.state.name,
            "error": t.error.message or None,
            "custom_job": t.executor_detail.custom_job_detail.job or None,
        }
    return out


def _refresh(job: Any, within: float) -> str:
    """One GET of the job, its retries bounded by `within` seconds and at most 30 (then
    the caller says Vertex cannot be reached, and tries again); returns its state.

    What `job.state` does, but the SDK's own retry of a GET lasts two minutes whatever
    the caller can wait, and its RetryError would end the follow.
    """
    from google.api_core import retry

    job._gca_resource = job.api_client.get_pipeline_job(name=job.resource_name, retry=retry.Retry(timeout=min(within, 30.0)))
    return job._gca_resource.state.name


class ConnectionLost(RuntimeError):
    """Vertex could not be reached while following a run for longer than the caller allows."""


def custom_job_errors(resource_names: List[str]) -> Dict[str, Tuple[int, str]]:
    """Display name -> error (google.rpc code, message) of the CustomJobs named (one GET
    each): why a trial that left no result failed (loop iterations share one task name,
    and a task's own error is gcpc's launcher's). Jobs that cannot be read are left out."""
    from google.cloud import aiplatform

    errors = {}
    for name in resource_names:
        try:
            job = aiplatform.CustomJob.get(name)
        except Exception:  # noqa: BLE001 - the task's own error is the fallback
            continue
        error = job.gca_resource.error
        if error.code or error.message:
            errors[job.display_name] = (int(error.code), str(error.message))
    return errors


def run_custom_jobs(label: str, value: str) -> List[Dict[str, Any]]:
    """Every CustomJob labelled `label=value`: one list (its pages), whatever the trials. Each as plain data: display name,
    state, strategy, worker pools' machines (WorkerPoolSpec field names) and the start and end Vertex recorded (ISO
    8601, None if the job never started or has not ended)."""
    from google.cloud import aiplatform

    out = []
    for job in aiplatform.CustomJob.list(filter=f'labels.{label}="{value}"'):
        gca = job.gca_resource
        if gca.labels.get(label) != value:
            continue  # the filter is the server's; checked here too
        pb = type(gca).pb(gca)
        out.append(
            {
                "display_name": gca.display_name,
                "state": gca.state.name,
                "strategy": gca.job_spec.scheduling.strategy.name,
                "worker_pool_specs": [
                    {
                        "replica_count": p.replica_count,
                        "machine_spec": {
                            "machine_type": p.machine_spec.machine_type,
                            "accelerator_type": p.machine_spec.accelerator_type.name,
                            "accelerator_count": p.machine_spec.accelerator_count,
                        },
                    }
                    for p in gca.job_spec.worker_pool_specs
                ],
                "start_time": gca.start_time.isoformat() if pb.HasField("start_time") else None,
                "end_time": gca.end_time.isoformat() if pb.HasField("end_time") else None,
            }
        )
    return out


def follow(
    job: Any,
    poll_interval: float,
    on_poll: Callable[[str, Dict[str, Dict[str, Any]]], None],
    give_up_after: float = 1800.0,
    on_outage: Optional[Callable[[Exception], None]] = None,
) -> str:
    """Polls with one GET of the job per interval, whatever the number of tasks, until it ends.

    A failed GET (network down, the API unavailable, the SDK's own retries exhausted) is
    retried every interval: the run goes on without us. After `give_up_after` seconds
    without an answer, ConnectionLost says how long it has been.
    """
    failing_since: Optional[float] = None
    while True:
        waited = 0.0 if failing_since is None else time.monotonic() - failing_since
        try:
            state = _refresh(job, max(give_up_after - waited, 1.0))
        except Exception as e:  # noqa: BLE001 - any failure to reach Vertex
            e = getattr(e, "cause", None) or e  # a RetryError's last attempt says what happened
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                if on_outage is not None:
                    on_outage(e)
            if now - failing_since >= give_up_after:
                raise ConnectionLost(
                    f"no answer from Vertex AI for {now - failing_since:.0f} s: {type(e).__name__}: {str(e)[:300]}"
                ) from None
            time.sleep(min(poll_interval, max(give_up_after - (now - failing_since), 0.01)))
            continue
        failing_since = None
        on_poll(state, task_details(job))
        if state in PIPELINE_STOPPED:
            return state
        time.sleep(poll_interval)


def check_target(project: Optional[str], location: Optional[str], field: str, also: str = "") -> VertexTarget:
    """Validates where the job would go, before any request; `also` is another problem of
    the same launch (missing credentials), said in the same error."""
    if not project:
        raise ConfigError(
            f"{field}.project",
            project,
            "a Google Cloud project id (none was set, and Application Default Credentials name none)",
            f"e.g. {field}.project=my-project" + (f". Also: {also.rstrip('.')}" if also else ""),
        )
    if not location:
        raise ConfigError(f"{field}.location", location, "a Vertex AI region such as us-central1")
    return VertexTarget(project=project, location=location)
