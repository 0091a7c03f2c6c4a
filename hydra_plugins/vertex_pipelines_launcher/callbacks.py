"""Runs inside each trial: writes result.json next to the trial's Hydra outputs.

The launcher adds this callback to every trial's command line; the collector and the
launcher read the file back. It holds JSON only, so nothing is ever unpickled from a bucket.
"""

import dataclasses
import json
import os
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

RESULT_FILE = "result.json"
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


class TrialResultCallback(Callback):
    """Records status, JSON return value, error text and timings of the trial."""

    def __init__(self) -> None:
        self.start: Optional[float] = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not is_chief():
            return
        output_dir = config.hydra.runtime.output_dir
        record = result_record(job_return, self.start, time.time())
        record["working_dir"] = os.getcwd()  # the job's, before Hydra changes back
        job_id = os.environ.get("CLOUD_ML_JOB_ID")  # set by Vertex in a CustomJob: for console links
        if job_id:
            record["vertex_job_id"] = job_id
        os.makedirs(output_dir, exist_ok=True)
        write_json(os.path.join(output_dir, RESULT_FILE), record)
