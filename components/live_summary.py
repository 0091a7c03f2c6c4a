"""The summary of a run that is still going: the collector's own rows for the trials that
have finished, a row saying RUNNING, PENDING or UNFINISHED for the others, and how many of
them are done. The launcher renders it as the live report.html; `results` prints it.

Standard library only, like the collector whose rows it reuses: a finished trial's row here
is the row the collector will write for it.
"""

from dataclasses import dataclass
from enum import Enum
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.collector import summarize, trial_row
from hydra_vertex_pipelines.components.trial_result import record_problem


class Progress(str, Enum):
    """Where a trial is, from its pipeline task's state."""

    ENDED = "ENDED"  # its task ended: without a record of its own it is MISSING, as the collector says
    RUNNING = "RUNNING"
    PENDING = "PENDING"  # its task has not started
    UNFINISHED = "UNFINISHED"  # no record yet, and its task is not known (trials in a loop share one)


UNFINISHED_STATUSES = (Progress.RUNNING.value, Progress.PENDING.value, Progress.UNFINISHED.value)


@dataclass(frozen=True)
class TrialNow:
    """One trial as a refresh sees it: its record (what `parse_record` gave, None if none was
    listed), whether it has a log, its progress, and when its attempt started (a record
    older than that is an earlier attempt's: see `record_problem`)."""

    record: Any
    has_log: bool
    progress: Progress
    not_before: Optional[float] = None


@dataclass(frozen=True)
class RunFacts:
    """What the collector is told of a run, for rows and a summary equal to its own."""

    run_id: str
    objective_key: str = ""
    objective_direction: str = "minimize"
    project: str = ""
    location: str = ""
    cost_rates: str = ""


def live_row(row: Mapping[str, Any], now: TrialNow, run: RunFacts) -> Dict[str, Any]:
    """The collector's row once the trial has its record (or its task ended without one),
    else a row with its progress as status and no value."""
    finished = record_problem(now.record, run.run_id or None, int(row["number"]) if run.run_id else None, now.not_before) is None
    if finished or now.progress is Progress.ENDED:
        return trial_row(row, now.record, now.has_log, run.project, run.location, run.run_id, now.not_before)
    return {
        "number": int(row["number"]),
        "overrides": list(row.get("overrides", [])),
        "output_dir": row["output_dir"],
        "log_path": None,
        "status": now.progress.value,
        "return_value": None,
        "error": None,
        "failure": None,
        "attempts": [],
    }


def live_summary(rows: Sequence[Mapping[str, Any]], trials: Mapping[int, TrialNow], run: RunFacts) -> Dict[str, Any]:
    """The collector's summary of the trials so far, with `live`: how many of them are done
    and when this was read. `rows` are the collector's trial rows; a trial missing from
    `trials` is pending."""
    pending = TrialNow(None, False, Progress.PENDING)
    out: List[Dict[str, Any]] = [live_row(r, trials.get(int(r["number"]), pending), run) for r in rows]
    summary = summarize(out, run.objective_key, run.objective_direction, run.cost_rates)
    done = sum(1 for r in out if r["status"] not in UNFINISHED_STATUSES)
    summary["live"] = {"done": done, "total": len(out), "updated": iso_utc()}
    return summary


def best_text(summary: Mapping[str, Any]) -> str:
    """`best: 0.31 (trial 7)`, or "" while no trial has a value."""
    best = summary.get("best")
    return f"best: {best['objective']:.6g} (trial {best['number']})" if best else ""


# ---- how the report says it is live (report.py places these) ------------------------------


def live_text(summary: Mapping[str, Any]) -> str:
    """A live report's `12 of 40 trials done` ("" for the collector's final one)."""
    live = summary.get("live")
    return f"{live['done']} of {live['total']} trials done" if live else ""


def live_reload(summary: Mapping[str, Any]) -> str:
    """A live report's reload, when it asks for one: the page reads its own file again, and
    stops once the collector's report (which has none) replaces it. It fetches nothing else."""
    reload_s = (summary.get("live") or {}).get("reload_s")
    return f'<meta http-equiv="refresh" content="{reload_s:g}">\n' if reload_s else ""


def live_header(summary: Mapping[str, Any]) -> str:
    """A live report's progress line ("" for the final report)."""
    live = summary.get("live")
    if not live:
        return ""
    state = str(live.get("state") or "running")
    again = f"; this page reloads every {live['reload_s']:g} s" if live.get("reload_s") else ""
    ending = "; the collector's report replaces this one when the run ends" if state == "running" else ""
    return f'<p class="meta" id="live">{escape(state)}: {escape(live_text(summary))}, as of {escape(str(live["updated"]))}{again}{ending}</p>'
