"""report.html in the sweep dir while the launcher follows a run: the collector's report of
the trials so far, refreshed as they finish, which the collector's final report replaces.

Each refresh costs one listing of the run's folder (its pages) and one read of each record
not read before (RecordsSoFar), whatever the number of trials; it runs only when a task's
state changed since the last one (or every poll for trials in a loop, whose tasks Vertex
does not name per trial), and the task states come from the follow's own poll.
"""

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.live_summary import Progress, RunFacts, TrialNow, best_text, live_summary
from hydra_vertex_pipelines.components.report import render_html

from ..cloud.states import PIPELINE_STOPPED, TASK_ENDED, TaskDetailState
from ..spec.sweep import SweepSpec
from ..spec.trials import trial_rows
from .records import RecordsSoFar, not_before

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunView:
    """What a live summary needs of a run: the collector's trial rows and what it is told,
    each trial's folder (gs://) and its pipeline task (None: in a loop)."""

    run_root: str
    rows: Tuple[Dict[str, Any], ...]
    output_uris: Dict[int, str]
    task_names: Dict[int, Optional[str]]
    facts: RunFacts
    report_dir: Optional[str] = None  # where the collector's report sits: local links are relative to it

    @classmethod
    def of_sweep(cls, sweep: SweepSpec, task_names: Mapping[int, str]) -> "RunView":
        facts = RunFacts(
            sweep.run_id, sweep.objective_key, sweep.objective_direction, sweep.project, sweep.location, sweep.cost_rates
        )
        return cls(
            sweep.run_root,
            tuple(trial_rows(sweep.trials)),
            {t.number: t.output_uri for t in sweep.trials},
            {t.number: task_names.get(t.number) for t in sweep.trials},
            facts,
            os.path.dirname(sweep.report_path),
        )

    @classmethod
    def of_manifest(cls, manifest: Mapping[str, Any]) -> "RunView":
        """From a sweep dir's manifest: its whole sweep when it recorded one (submitted
        batches do), else its trial list."""
        trials = manifest.get("trials") or []
        names = {int(t["number"]): t.get("task_name") for t in trials}
        if manifest.get("sweep"):
            view = cls.of_sweep(SweepSpec.from_dict(manifest["sweep"]), {n: v for n, v in names.items() if v})
            return replace(view, task_names=names)
        rows = tuple(
            {"number": int(t["number"]), "overrides": list(t["overrides"]), "output_dir": t["output_dir"]} for t in trials
        )
        uris = {int(t["number"]): t["output_uri"] for t in trials}
        return cls(manifest["run_root"], rows, uris, names, RunFacts(str(manifest.get("run_id") or "")))


def progress_of(task_name: Optional[str], tasks: Mapping[str, Mapping[str, Any]], stopped: bool) -> Progress:
    """A trial's progress from its task's state in the last poll (no request of its own)."""
    if stopped:
        return Progress.ENDED
    if not task_name:
        return Progress.UNFINISHED
    state = tasks.get(task_name, {}).get("state") or TaskDetailState.PENDING
    if state in TASK_ENDED:
        return Progress.ENDED
    return Progress.RUNNING if state == TaskDetailState.RUNNING else Progress.PENDING


def summary_now(
    view: RunView, records: RecordsSoFar, tasks: Mapping[str, Mapping[str, Any]], stopped: bool, attempt_started: Optional[float]
) -> Dict[str, Any]:
    """One read of the records (a listing, then the new ones) and the live summary of the run."""
    found = records.read()
    trials = {}
    for number in view.output_uris:
        name = view.task_names.get(number)
        state = tasks.get(name, {}).get("state") if name else None
        trials[number] = TrialNow(
            found.get(number),
            number in records.logs,
            progress_of(name, tasks, stopped),
            not_before(attempt_started, bool(name), state),
        )
    return live_summary(list(view.rows), trials, view.facts)


# A live report.html reloads itself in a browser at most this often (or every poll interval).
RELOAD_S = 5.0


class LiveReport:
    """Keeps `path` (the sweep dir's report.html) up to date with the run; `refresh` is
    called with each poll's state and tasks, and returns the summary it last wrote."""

    def __init__(
        self, view: RunView, storage: Any, path: Path, attempt_started: Optional[float] = None, reload_s: float = 0.0
    ) -> None:
        self.view = view
        self.records = RecordsSoFar(storage, view.run_root, view.output_uris)
        self.path = Path(path)
        self.attempt_started = attempt_started
        self.reload_s = reload_s
        self.seen: Optional[List[Tuple[str, str]]] = None
        self.summary: Optional[Dict[str, Any]] = None

    def refresh(self, state: str, tasks: Mapping[str, Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
        """Reads and writes again when a task's state changed since the last refresh (every
        poll when trials share a loop's task, and once more when the run stops)."""
        seen = sorted((name, str(t.get("state"))) for name, t in tasks.items())
        looped = not all(self.view.task_names.values())
        if seen == self.seen and not looped and state not in PIPELINE_STOPPED:
            return self.summary
        self.seen = seen
        summary = summary_now(self.view, self.records, tasks, state in PIPELINE_STOPPED, self.attempt_started)
        cost = self.records.last
        log.debug(
            f"live report read: {cost.pages} listing pages, {cost.downloads} records ({summary['live']['done']} trials done)"
        )
        stopped = state in PIPELINE_STOPPED
        if self.summary is None or _rows(summary) != _rows(self.summary) or stopped:
            summary["live"]["state"] = state.replace("PIPELINE_STATE_", "").lower()
            if self.reload_s and not stopped:
                summary["live"]["reload_s"] = self.reload_s
            write_atomic(self.path, render_html(summary, self.view.report_dir))
            self.summary = summary
        return self.summary


    def best_after(self, state: str, tasks: Mapping[str, Mapping[str, Any]], warn: Callable[[str], None]) -> str:
        """Refreshes, never stopping the follow (a failure is passed to `warn` and leaves the
        report as it was); the best trial so far ("" while none has a value)."""
        try:
            summary = self.refresh(state, tasks)
        except Exception as e:  # noqa: BLE001 - the report must never stop the follow
            warn(f"The live report could not be refreshed ({type(e).__name__}: {str(e)[:200]}); following goes on")
            summary = self.summary
        return best_text(summary) if summary else ""


def _rows(summary: Mapping[str, Any]) -> Any:
    return [(r["number"], r["status"], r.get("return_value"), r.get("error")) for r in summary["trials"]]
