"""Recovery: trials that failed for the cloud's reasons run again, as new PipelineJobs of
the same sweep.

Each attempt is a resumed run (the same run id, so the same trial folders): the trials that
completed are in it as Vertex's cache hits, which cost nothing and bring their results to
the collector; the trials being recovered carry the label `hydra-rerun=attempt-N`, a cache
key of their own; a trial that failed for another reason, or has no attempt left, is left
out, so it never runs again. Its folder is kept, so a trial's `AIP_CHECKPOINT_DIR` holds
what its earlier attempt saved.
"""

import dataclasses
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus

from hydra_vertex_pipelines.components.collector import sweep_usage
from hydra_vertex_pipelines.components.failures import Failure, FailureKind, with_failures
from hydra_vertex_pipelines.components.report import fallback_text
from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.spec.fallbacks import for_attempt, ran_on
from hydra_vertex_pipelines.pipeline_builder.spec.names import label_value

from ._planning import Batch
from ._resume import RERUN_LABEL
from ._settings import RecoverySettings

log = logging.getLogger(__name__)


class Round(NamedTuple):
    """What one PipelineJob of the sweep ended with: its trials' JobReturns (in its batch's
    order), its summary (None if the collector wrote none), its failures and the job's name."""

    numbers: List[int]
    returns: List[JobReturn]
    summary: Optional[Dict[str, Any]]
    failures: Dict[int, Failure]
    resource_name: str


def to_recover(failures: Dict[int, Failure], attempts: Dict[int, int], settings: RecoverySettings) -> Dict[int, Failure]:
    """The failed trials that run again: a recoverable kind, and an attempt left."""
    return {n: f for n, f in failures.items() if f.kind in settings.kinds and attempts[n] < settings.max_attempts}


def attempt_batch(
    batch: Batch,
    recovered: Sequence[int],
    completed: Sequence[int],
    attempt: int,
    kinds: Optional[Mapping[int, Sequence[Optional[str]]]] = None,
) -> Batch:
    """The sweep's batch for attempt N: the completed trials (cache hits) and the recovered
    ones, labelled so that the cache cannot skip them and on the fallback that the kinds of
    their earlier failures (`kinds`, oldest first) choose, as a new PipelineJob whose files
    go to the sweep dir's recovery/attempt-N."""
    stamp = label_value(f"attempt-{attempt}")
    trials = tuple(
        dataclasses.replace(for_attempt(t, (kinds or {}).get(t.number, ())), labels={**t.labels, RERUN_LABEL: stamp})
        if t.number in recovered
        else t
        for t in batch.sweep.trials
        if t.number in recovered or t.number in completed
    )
    return dataclasses.replace(
        batch,
        sweep=dataclasses.replace(batch.sweep, trials=trials),
        sweep_dir=batch.sweep_dir / SweepFiles.RECOVERY / f"attempt-{attempt}",
        job_id=f"{batch.job_id or batch.sweep.run_id}-attempt-{attempt}",
    )


def _attempt_entry(
    attempt: int,
    status: JobStatus,
    row: Optional[Dict[str, Any]],
    failure: Optional[Failure],
    fallback: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One attempt as `attempts` lists it: its status as the collector read it (COMPLETED,
    FAILED or MISSING), else as its JobReturn says, and the fallback it ran on (None: the
    trial's own settings)."""
    completed = status is JobStatus.COMPLETED
    read = (row or {}).get("status")
    return {
        "attempt": attempt,
        "status": read or ("COMPLETED" if completed else "FAILED"),
        "failure": None if completed or failure is None else failure.to_json(),
        "fallback": fallback,
    }


def merged_summary(base: Dict[str, Any], rows: Dict[int, Dict[str, Any]], cost_rates: str) -> Dict[str, Any]:
    """The last attempt's summary (its objective, best trial and metrics cover every
    completed trial) with every trial's row, counts and machine-hours."""
    trials = [rows[n] for n in sorted(rows)]
    counts: Dict[str, int] = {}
    for row in trials:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    usage = {**base.get("usage", {}), **{k: v for k, v in sweep_usage(trials, cost_rates).items() if k != "source"}}
    return {**base, "trials": trials, "counts": counts, "usage": usage}


class Recovery:
    """The attempts of one followed sweep: each trial's latest JobReturn, summary row and attempts."""

    def __init__(self, batch: Batch, settings: RecoverySettings, first: Round) -> None:
        self.batch, self.settings = batch, settings
        if first.summary is not None:  # each failed trial's kind, as the launcher's evidence shows it
            with_failures(first.summary, first.failures)
        self.returns = dict(zip(first.numbers, first.returns, strict=True))
        self.rows = {int(r["number"]): r for r in (first.summary or {}).get("trials", [])}
        self.attempts = {n: 1 for n in first.numbers}
        self.failures = dict(first.failures)
        # Each trial's attempts' failure kinds, oldest first (None: completed): they choose its fallback.
        self.kinds: Dict[int, List[Optional[str]]] = {n: [f.kind.value] for n, f in first.failures.items()}
        self.summary = first.summary
        self.jobs = [first.resource_name]

    def run(self, submit_round: Callable[[Batch], Round]) -> List[JobReturn]:
        """Attempts until no failed trial is recoverable; every trial's final JobReturn."""
        while True:
            recovered = to_recover(self.failures, self.attempts, self.settings)
            if not recovered:
                return [self.returns[t.number] for t in self.batch.sweep.trials]
            attempt = max(self.attempts[n] for n in recovered) + 1
            self._announce(recovered, attempt)
            completed = [n for n, r in self.returns.items() if r.status is JobStatus.COMPLETED]
            batch = attempt_batch(self.batch, sorted(recovered), completed, attempt, self.kinds)
            ran = {t.number: ran_on(t) for t in batch.sweep.trials if t.number in recovered}
            for number, fallback in sorted((n, f) for n, f in ran.items() if f):
                log.warning(f"Recovery: trial {number} runs on {fallback_text(fallback)}")
            self._add(submit_round(batch), recovered, attempt, ran)

    def _announce(self, recovered: Dict[int, Failure], attempt: int) -> None:
        why = ", ".join(f"{n} ({f.kind.value})" for n, f in sorted(recovered.items()))
        log.warning(
            f"Recovery: attempt {attempt} of {self.settings.max_attempts} for {len(recovered)} trials, as a new "
            f"PipelineJob of run {self.batch.sweep.run_id} (trials that completed are cache hits): trial {why}"
        )
        if any(f.kind is FailureKind.QUOTA for f in recovered.values()) and self.settings.quota_backoff:
            log.warning(f"Recovery: waiting {self.settings.quota_backoff:.0f} s (quota_backoff) after a quota error")
            time.sleep(self.settings.quota_backoff)

    def _add(
        self, result: Round, recovered: Dict[int, Failure], attempt: int, ran: Optional[Dict[int, Any]] = None
    ) -> None:
        """Takes the recovered trials' results from the attempt; the other trials keep theirs."""
        new_rows = {int(r["number"]): r for r in (result.summary or {}).get("trials", [])}
        if result.summary is not None:
            with_failures(result.summary, result.failures)
        for number, returned in zip(result.numbers, result.returns, strict=True):
            if number not in recovered:
                continue
            self.returns[number] = returned
            self.attempts[number] = attempt
            failure = result.failures.get(number)
            if failure is None:
                self.failures.pop(number, None)
            else:
                self.failures[number] = failure
            self.kinds.setdefault(number, []).append(None if failure is None else failure.kind.value)
            fallback = (ran or {}).get(number)
            earlier = self.rows.get(number, {}).get("attempts") or []
            row = new_rows.get(number) or self.rows.get(number)
            if row is not None:
                entry = _attempt_entry(attempt, returned.status, new_rows.get(number), failure, fallback)
                row = {**row, "attempts": [*earlier, entry], "fallback": fallback}
                self.rows[number] = row
        self.summary = result.summary or self.summary
        self.jobs.append(result.resource_name)

    def final_summary(self) -> Optional[Dict[str, Any]]:
        """The sweep's summary over every attempt (None if no attempt's collector wrote one)."""
        if self.summary is None:
            return None
        return merged_summary(self.summary, self.rows, self.batch.sweep.cost_rates)
