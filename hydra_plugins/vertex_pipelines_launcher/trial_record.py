"""A trial's result record: result.json next to the trial's Hydra outputs.

Written by the trial (`trial_entry`, `pickle_entry`), read back by the collector and the
launcher. It holds JSON only, so nothing is ever unpickled from a bucket. The run id and
job number in it tie the record to the run that wrote it.
"""

import dataclasses
import json
import os
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus

from hydra_vertex_pipelines.components.sweep_files import RESULT_FILE
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


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def result_record(job_return: JobReturn, start: Optional[float], end: float) -> Dict[str, Any]:
    status = job_return.status.name if job_return.status else "UNKNOWN"
    record: Dict[str, Any] = {"status": status, "return_value": None, "error": None}
    raw = job_return._return_value
    if job_return.status == JobStatus.COMPLETED:
        record["return_value"], exact = to_json(raw)
        if not exact:
            record["return_value_is_repr"] = True
    elif isinstance(raw, BaseException):
        text = "".join(traceback.format_exception(type(raw), raw, raw.__traceback__))
        record["error"] = text[-MAX_ERROR_CHARS:]
        record["error_type"] = type(raw).__name__
    if start is not None:
        record["start_time"] = _iso(start)
        record["duration_s"] = round(end - start, 3)
    record["end_time"] = _iso(end)
    return record


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


def write_json(path: str, data: Dict[str, Any]) -> None:
    """Writes through a temporary file so a reader never sees half a result."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def write_result(output_dir: str, job_return: JobReturn, start: Optional[float], *, run_id: str, number: int) -> None:
    """The chief replica records how the job ended, for this run and job number."""
    if not is_chief():
        return
    record = result_record(job_return, start, time.time())
    record["run_id"] = run_id
    record["number"] = number
    record["working_dir"] = job_return.working_dir or os.getcwd()
    job_id = os.environ.get("CLOUD_ML_JOB_ID")  # set by Vertex in a CustomJob: for console links
    if job_id:
        record["vertex_job_id"] = job_id
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, RESULT_FILE), record)
