"""Aggregates the trials' result records (.vertex/result.json in each trial folder) into one summary.

Runs inside the pipeline after every trial has ended, however it ended. Standard library
only: it reads files through Vertex's Cloud Storage FUSE mount (`/gcs/...`) and needs no
network, so it works in training networks without egress.
"""

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source, TrialEvidence, attempts_of, failure_of
from hydra_vertex_pipelines.components.machine_hours import estimated_cost, hours_between, total, usage
from hydra_vertex_pipelines.components.sweep_files import TrialFiles
from hydra_vertex_pipelines.components.trial_result import Flaw, RecordProblem, parse_record, record_problem

MISSING = "MISSING"
DIRECTIONS = ("minimize", "maximize")
CONSOLE = "https://console.cloud.google.com"


def console_links(job_id: Optional[str], project: str, location: str) -> Dict[str, Optional[str]]:
    """The CustomJob's console page and its Cloud Logging query, when the job is known.

    Needs project and location: a local run sets a job id too, but has no console.
    """
    if not (job_id and project and location):
        return {"console_url": None, "log_url": None}
    job, proj = quote(str(job_id), safe=""), quote(project, safe="")
    query = quote(f'resource.labels.job_id="{job_id}"', safe="")
    return {
        "console_url": f"{CONSOLE}/vertex-ai/locations/{quote(location, safe='')}/training/{job}/cpu?project={proj}",
        "log_url": f"{CONSOLE}/logs/query;query={query}?project={proj}",
    }


def _read(path: str) -> Any:
    """The record at `path`, as `parse_record` gives it."""
    try:
        with open(path, "rb") as f:
            return parse_record(f.read())
    except FileNotFoundError:
        return None
    except OSError as e:
        return RecordProblem(Flaw.UNREADABLE, str(e))


def read_trial(row: Mapping[str, Any], project: str = "", location: str = "", run_id: str = "") -> Dict[str, Any]:
    """One trial's summary row, from its record on the FUSE mount."""
    files = TrialFiles(row["output_dir"])
    return trial_row(row, _read(files.result), os.path.isfile(files.log), project, location, run_id)


def trial_row(
    row: Mapping[str, Any],
    result: Any,
    has_log: bool,
    project: str = "",
    location: str = "",
    run_id: str = "",
    not_before: Optional[float] = None,
) -> Dict[str, Any]:
    """One trial's summary row from its record (what `parse_record` gave), wherever it was
    read: the collector's and the launcher's live report's rows are the same. A trial that
    left no record of how it ended, of run `run_id` and this trial (any run if ""), is
    MISSING, not dropped; `not_before` as `record_problem` takes it."""
    files = TrialFiles(row["output_dir"])
    entry: Dict[str, Any] = {
        "number": int(row["number"]),  # pipeline parameters carry numbers as floats
        "overrides": list(row.get("overrides", [])),
        "output_dir": row["output_dir"],
        "log_path": files.log if has_log else None,
    }
    problem = record_problem(result, run_id or None, entry["number"] if run_id else None, not_before)
    if problem is not None:
        error = problem.at(files.result)
        unknown = Failure(FailureKind.UNKNOWN, Source.NONE, None, error)
        return {**entry, "status": MISSING, "return_value": None, "error": error, **failure_fields(unknown, MISSING)}
    entry.update(
        run_id=result.get("run_id"),
        status=str(result["status"]),
        return_value=result.get("return_value"),
        error=result.get("error"),
        start_time=result.get("start_time"),
        end_time=result.get("end_time"),
        duration_s=result.get("duration_s"),
    )
    if result.get("return_value_is_repr"):
        entry["return_value_is_repr"] = True
    entry["usage"] = trial_usage(row, result)
    job_id = result.get("vertex_job_id")
    if job_id:
        entry["vertex_job_id"] = job_id
    entry.update(console_links(job_id, project, location))
    failed = entry["status"] != "COMPLETED"
    failure = failure_of(TrialEvidence(record_status=entry["status"], record_error=entry["error"])) if failed else None
    entry.update(failure_fields(failure, entry["status"]))
    return entry


def failure_fields(failure: Optional[Failure], status: str) -> Dict[str, Any]:
    """A row's `failure` (its last attempt's kind and evidence, None if it completed) and
    `attempts` (every attempt, oldest first: see `failures.attempts_of`)."""
    return {"failure": None if failure is None else failure.to_json(), "attempts": attempts_of(failure, status)}


def trial_usage(row: Mapping[str, Any], record: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The trial's machine-hours from its record's start and end (the trial process's run
    time, on every replica of every pool), or None when the row or record lacks them."""
    hours = hours_between(record.get("start_time"), record.get("end_time"))
    if hours is None or "machines" not in row:
        return None
    return usage(row["machines"], row.get("strategy"), hours)


def sweep_usage(rows: Sequence[Dict[str, Any]], cost_rates: str) -> Dict[str, Any]:
    """The trials' machine-hours added up; with `cost_rates` (JSON), the estimated cost of
    the sweep and of each row (set on the rows)."""
    out: Dict[str, Any] = {"source": "trial records", "totals": total(r.get("usage") for r in rows)}
    if cost_rates:
        rates = strict_json.loads(cost_rates)
        out["estimated_cost"] = estimated_cost(out["totals"], rates)
        for r in rows:
            r["estimated_cost"] = estimated_cost(r["usage"], rates) if r.get("usage") else None
    return out


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


def _at_key(return_value: Any, key: str) -> Any:
    """What `key` names in a return value (see `objective_value`), or None."""
    if key == "":
        return return_value
    if isinstance(return_value, dict) and key in return_value:
        return return_value[key]
    value = return_value
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def objective_value(return_value: Any, key: str) -> Optional[float]:
    """The finite number `key` names in a return value, or None: a NaN or an infinity is
    not ranked (NaN orders with nothing, and an infinity would beat every real result).

    A key is looked up literally first ("val/loss", "val.loss"), then as a dotted path
    through nested dicts (and list indices); "" means the return value itself.
    """
    value = _at_key(return_value, key)
    return float(value) if _number(value) else None


def _non_finite(return_value: Any, key: str) -> bool:
    value = _at_key(return_value, key)
    return isinstance(value, float) and not math.isfinite(value)


def normalise_direction(direction: str) -> Optional[str]:
    """`minimize` or `maximize` (also `min`/`max`, any case), or None if it is neither."""
    d = direction.strip().lower()
    return {"min": "minimize", "max": "maximize"}.get(d, d) if d in (*DIRECTIONS, "min", "max") else None


def best_trial(rows: Sequence[Mapping[str, Any]], direction: str) -> Optional[Mapping[str, Any]]:
    """The completed row with the best objective; ties go to the lower trial number."""
    scored = [r for r in rows if r["status"] == "COMPLETED" and r.get("objective") is not None]
    if not scored:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda r: (sign * r["objective"], r["number"]))


def is_internal(key: str) -> bool:
    """Hydra's own settings (hydra.*, hydra/launcher=...) say how a trial ran, not what it tried."""
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def parse_overrides(overrides: Sequence[str]) -> Dict[str, str]:
    """A trial's settings from its `key=value` overrides, Hydra's own ones left out.

    `+key=v`/`++key=v` set `key`; `~key` deletes it, shown as the value "~".
    """
    settings: Dict[str, str] = {}
    for override in overrides:
        key, sep, value = str(override).partition("=")
        if key.startswith("~"):
            key, value = key[1:], "~"
        elif not sep:
            continue
        key = key.lstrip("+").strip()
        if key and not is_internal(key):
            settings[key] = value.strip()
    return settings


def numeric_setting(value: Optional[str]) -> Optional[float]:
    """A setting's value as a finite number, or None if it is not one."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def swept_settings(rows: Sequence[Mapping[str, Any]]) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, str]]:
    """Settings that take more than one value across trials (being unset counts as one),
    each with its values and whether all are numbers; and the settings all trials share."""
    parsed = [parse_overrides(r["overrides"]) for r in rows]
    keys: List[str] = []
    for p in parsed:
        keys.extend(k for k in p if k not in keys)
    swept: Dict[str, Dict[str, Any]] = {}
    fixed: Dict[str, str] = {}
    for key in keys:
        values: List[Optional[str]] = []
        for p in parsed:
            if p.get(key) not in values:
                values.append(p.get(key))
        if len(values) == 1 and values[0] is not None:
            fixed[key] = values[0]
            continue
        present = [v for v in values if v is not None]
        numeric = bool(present) and all(numeric_setting(v) is not None for v in present)
        if numeric:
            values = sorted(present, key=lambda v: numeric_setting(v) or 0.0) + [None] * (None in values)
        swept[key] = {"numeric": numeric, "values": values}
    return swept, fixed


def objective_summary(rows: Sequence[Mapping[str, Any]], key: str, direction: str) -> Dict[str, Any]:
    """What the best trial is chosen by, how many trials have a value, and why none is best."""
    scored = sum(1 for r in rows if r.get("objective") is not None)
    summary: Dict[str, Any] = {"key": key, "direction": normalise_direction(direction) or direction, "trials_with_value": scored}
    what = "a number" if key == "" else f"a number at {key!r}"
    unranked = [r["number"] for r in rows if r["status"] == "COMPLETED" and _non_finite(r.get("return_value"), key)]
    if unranked:
        summary["non_finite"] = unranked  # trials whose value is NaN or infinite: shown, not ranked
    if normalise_direction(direction) is None:
        summary["note"] = f"unknown objective direction {direction!r}: use minimize or maximize"
    elif scored == 0:
        summary["note"] = f"no completed trial returned {what}" + (" that is finite" if unranked else "")
    return summary


# The collector component writes its files under this name; its source is copied into
# every compiled pipeline.yaml, so the name stays.
write_text = write_atomic


def collect(
    trials: Sequence[Mapping[str, Any]],
    summary_path: str,
    objective_key: str = "",
    objective_direction: str = "minimize",
    project: str = "",
    location: str = "",
    run_id: str = "",
    cost_rates: str = "",
) -> Dict[str, Any]:
    """Reads every trial's result, writes the summary at `summary_path` and returns it.

    A bad objective direction is reported in the summary rather than raised: the sweep has
    already run, and its results matter more than the ranking.
    """
    rows: List[Dict[str, Any]] = [read_trial(t, project, location, run_id) for t in trials]
    summary = summarize(rows, objective_key, objective_direction, cost_rates)
    write_summary(summary, summary_path)
    return summary


def summarize(rows: List[Dict[str, Any]], objective_key: str, objective_direction: str, cost_rates: str = "") -> Dict[str, Any]:
    """The summary of the trials' rows (each gains its `objective`): counts, metrics, the
    best trial, the swept settings and the machine-hours. Rows of unfinished trials (a live
    report's) count under their status and are never ranked."""
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        r["objective"] = objective_value(r["return_value"], objective_key) if r["status"] == "COMPLETED" else None
    objective = objective_summary(rows, objective_key, objective_direction)
    best = None if "note" in objective else best_trial(rows, objective["direction"])
    swept, fixed = swept_settings(rows)
    return {
        "created": iso_utc(),
        "trials": rows,
        "counts": counts,
        "metrics": numeric_metrics(rows),
        "objective": objective,
        "best": None if best is None else {k: best[k] for k in ("number", "objective", "overrides", "output_dir")},
        "swept": swept,
        "fixed": fixed,
        "usage": sweep_usage(rows, cost_rates),
    }


def write_summary(summary: Mapping[str, Any], summary_path: str) -> None:
    """Writes the summary whole or not at all (also once more, with its experiment runs)."""
    write_atomic(summary_path, strict_json.dumps(summary, indent=2, default=repr))
