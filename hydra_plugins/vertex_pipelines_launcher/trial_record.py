"""A trial's result record: .vertex/result.json in the trial's Hydra run dir, beside .hydra/.

Written by the trial (`trial_entry`, `pickle_entry`), read back by the collector and the
launcher; its fields and the rules a reader applies are in `components.trial_result`. It
holds JSON only, so nothing is ever unpickled from a bucket.
"""

import dataclasses
import json
import os
import sys
import time
import traceback
from typing import Any, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.sweep_files import TrialFiles
from hydra_vertex_pipelines.components.trial_result import TrialResult

MAX_ERROR_CHARS = 20_000


def to_json(value: Any) -> Tuple[Any, bool]:
    """`value` as JSON data, and whether it is exact (False: it was replaced by its repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value, True
    if isinstance(value, (list, tuple)):
        items = [to_json(v) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    if isinstance(value, dict):
        pairs = {str(k): to_json(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, all(ok for _, ok in pairs.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    module = type(value).__module__
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return to_json(OmegaConf.to_container(value, resolve=True))
    for method in ("tolist", "item"):  # numpy, torch, jax scalars and arrays
        if callable(getattr(value, method, None)):
            try:
                return to_json(getattr(value, method)())
            except Exception:
                pass
    return repr(value), False


def trial_result(job_return: JobReturn, start: Optional[float], end: float, *, run_id: str, number: int) -> TrialResult:
    """How job `number` of run `run_id` ended, as its record says it."""
    raw = job_return._return_value
    value, exact, error, error_type = None, True, None, None
    if job_return.status == JobStatus.COMPLETED:
        value, exact = to_json(raw)
    elif isinstance(raw, BaseException):
        error = "".join(traceback.format_exception(type(raw), raw, raw.__traceback__))[-MAX_ERROR_CHARS:]
        error_type = type(raw).__name__
    return TrialResult(
        status=job_return.status.name if job_return.status else "UNKNOWN",
        run_id=run_id,
        number=number,
        end_time=iso_utc(end),
        working_dir=job_return.working_dir or os.getcwd(),
        return_value=value,
        return_value_is_repr=not exact,
        error=error,
        error_type=error_type,
        start_time=None if start is None else iso_utc(start),
        duration_s=None if start is None else round(end - start, 3),
        vertex_job_id=os.environ.get("CLOUD_ML_JOB_ID"),  # set by Vertex in a CustomJob: for console links
    )


FORK_SERVER = "hydra_vertex_pipelines.pipeline_builder.local.fork_server"


def job_starts() -> None:
    """Hydra has composed the job's config and the job starts. A trial forked by local
    mode's server says so, and the server may start the next one (fork_server); anywhere
    else (on Vertex, a fresh interpreter) this does nothing."""
    server = sys.modules.get(FORK_SERVER)
    if server is not None:
        server.tell_started()


def is_chief() -> bool:
    """Whether this process is the trial's first replica: only it writes the result.

    Vertex describes a multi-replica job in CLUSTER_SPEC; a single replica has none.
    """
    spec = os.environ.get("CLUSTER_SPEC")
    if not spec:
        return True
    try:
        task = json.loads(spec).get("task", {})
    except ValueError:
        return True
    return task.get("type", "workerpool0") == "workerpool0" and int(task.get("index", 0)) == 0


def write_result(output_dir: str, job_return: JobReturn, start: Optional[float], *, run_id: str, number: int) -> None:
    """The chief replica records how the job ended, for this run and job number."""
    if not is_chief():
        return
    record = trial_result(job_return, start, time.time(), run_id=run_id, number=number)
    write_atomic(TrialFiles(output_dir).result, strict_json.dumps(record.to_json(), indent=2))
