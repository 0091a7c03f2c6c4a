"""Aggregates the trials' result.json files into one summary.

Runs inside the pipeline after every trial has ended, however it ended. Standard library
only: it reads files through Vertex's Cloud Storage FUSE mount (`/gcs/...`) and needs no
network, so it works in training networks without egress.
"""

import json
import math
import os
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Sequence

RESULT_FILE = "result.json"
MISSING = "MISSING"


def read_trial(row: Mapping[str, Any]) -> Dict[str, Any]:
    """One trial's summary row; a trial that left no readable result is MISSING, not dropped."""
    path = os.path.join(row["output_dir"], RESULT_FILE)
    entry: Dict[str, Any] = {
        "number": int(row["number"]),  # pipeline parameters carry numbers as floats
        "overrides": list(row.get("overrides", [])),
        "output_dir": row["output_dir"],
    }
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except FileNotFoundError:
        return {**entry, "status": MISSING, "return_value": None, "error": f"no {RESULT_FILE} at {path}"}
    except (OSError, ValueError) as e:
        return {**entry, "status": MISSING, "return_value": None, "error": f"unreadable {path}: {e}"}
    entry.update(
        status=result.get("status", MISSING),
        return_value=result.get("return_value"),
        error=result.get("error"),
        start_time=result.get("start_time"),
        end_time=result.get("end_time"),
        duration_s=result.get("duration_s"),
    )
    return entry


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numeric_metrics(trials: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Each completed trial's numeric results, flat: `trial_3` or `trial_3.loss`."""
    metrics: Dict[str, float] = {}
    for t in trials:
        if t["status"] != "COMPLETED":
            continue
        value = t["return_value"]
        if _number(value):
            metrics[f"trial_{t['number']}"] = float(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if _number(item):
                    metrics[f"trial_{t['number']}.{key}"] = float(item)
    return metrics


def collect(trials: Sequence[Mapping[str, Any]], summary_path: str) -> Dict[str, Any]:
    """Reads every trial's result, writes the summary at `summary_path` and returns it."""
    rows: List[Dict[str, Any]] = [read_trial(t) for t in trials]
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = {
        "created": datetime.now(timezone.utc).isoformat(),
        "trials": rows,
        "counts": counts,
        "metrics": numeric_metrics(rows),
    }
    os.makedirs(os.path.dirname(summary_path) or ".", exist_ok=True)
    tmp = f"{summary_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=repr)
    os.replace(tmp, summary_path)
    return summary
