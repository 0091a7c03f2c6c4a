"""The attempts of one sweep: which failed trials run again, as what, and what each ended with.

Each attempt is a resumed run (the same run id, so the same trial folders): the trials that
completed are in it as Vertex's cache hits, which cost nothing and bring their results to
the collector; the trials being recovered carry the label `hydra-rerun=attempt-N`, a cache
key of their own; a trial that failed for another reason, or has no attempt left, is left
out, so it never runs again. Its folder is kept, so a trial's `AIP_CHECKPOINT_DIR` holds
what its earlier attempt saved.

One implementation for the launcher (a trial's result is its JobReturn) and `recover` (a
trial's result is its summary row): whoever submits an attempt passes `Recovery.run` a
function that submits a sweep spec and returns its `Round`.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Generic, List, Mapping, Optional, Sequence, TypeVar

from hydra_vertex_pipelines.components.failures import Failure, FailureKind, with_failures
from hydra_vertex_pipelines.components.report import fallback_text

from ..spec.fallbacks import for_attempt, ran_on
from ..spec.names import label_value
from ..spec.sweep import SweepSpec
from ..spec.trials import TrialSpec
from .summary import merged_summary

log = logging.getLogger(__name__)

R = TypeVar("R")

RERUN_LABEL = "hydra-rerun"  # on a trial that runs again: a cache key of its own
# `recover`'s attempts per trial when the sweep's own setting is 1 (no recovery).
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RecoverySettings:
    """How many attempts a trial gets, for which failures, and the wait after a quota error."""

    max_attempts: int = 1  # 1: no recovery
    kinds: FrozenSet[FailureKind] = frozenset()
    quota_backoff: float = 60.0  # seconds

    def to_json(self) -> Dict[str, Any]:
        kinds = sorted(k.value for k in self.kinds)
        return {"max_attempts": self.max_attempts, "kinds": kinds, "quota_backoff": self.quota_backoff}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "RecoverySettings":
        kinds = frozenset(FailureKind(k) for k in data["kinds"])
        return cls(int(data["max_attempts"]), kinds, float(data["quota_backoff"]))


@dataclass(frozen=True)
class Round(Generic[R]):
    """What one PipelineJob of the sweep ended with: each of its trials' result (in its
    sweep's order), which completed, its summary (None if the collector wrote none), its
    failed trials' failures and the job's resource name."""

    results: Dict[int, R]
    completed: FrozenSet[int]
    summary: Optional[Dict[str, Any]]
    failures: Dict[int, Failure]
    resource_name: str


def to_recover(failures: Dict[int, Failure], attempts: Dict[int, int], settings: RecoverySettings) -> Dict[int, Failure]:
    """The failed trials that run again: a recoverable kind, and an attempt left."""
    return {n: f for n, f in failures.items() if f.kind in settings.kinds and attempts[n] < settings.max_attempts}


def recovered_trial(trial: TrialSpec, kinds: Sequence[FailureKind], attempt: int) -> TrialSpec:
    """The trial as attempt N runs it again, after its earlier attempts failed for `kinds`
    (oldest first): on the fallback those kinds choose (`spec/fallbacks.py`), and labelled so
    that the cache cannot skip it."""
    chosen = for_attempt(trial, kinds)
    return dataclasses.replace(chosen, labels={**chosen.labels, RERUN_LABEL: label_value(f"attempt-{attempt}")})


def attempt_sweep(
    sweep: SweepSpec, recovered: Mapping[int, Sequence[FailureKind]], completed: Sequence[int], attempt: int
) -> SweepSpec:
    """The sweep as attempt N runs it: the completed trials (cache hits) and the recovered
    ones (trial number -> the kinds its attempts failed for), and no other."""
    trials = tuple(
        recovered_trial(t, recovered[t.number], attempt) if t.number in recovered else t
        for t in sweep.trials
        if t.number in recovered or t.number in completed
    )
    return dataclasses.replace(sweep, trials=trials)


def attempt_job_id(job_id: str, attempt: int) -> str:
    """The PipelineJob id of attempt N of the sweep whose first PipelineJob is `job_id`."""
    return f"{job_id}-attempt-{attempt}"


def attempt_entry(
    attempt: int,
    completed: bool,
    row: Optional[Dict[str, Any]],
    failure: Optional[Failure],
    fallback: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One attempt as `attempts` lists it: its status as the collector read it (COMPLETED,
    FAILED or MISSING), else as its result says, and the fallback it ran on (None: the
    trial's own settings)."""
    read = (row or {}).get("status")
    return {
        "attempt": attempt,
        "status": read or ("COMPLETED" if completed else "FAILED"),
        "failure": None if completed or failure is None else failure.to_json(),
        "fallback": fallback,
    }


def attempts_made(row: Dict[str, Any]) -> int:
    """The attempts a summary row lists (1 for a row without them)."""
    return max([int(a.get("attempt") or 1) for a in row.get("attempts") or []] or [1])


def failed_kinds(row: Optional[Dict[str, Any]]) -> List[FailureKind]:
    """The kinds a summary row's attempts failed for, oldest first."""
    failures = [Failure.from_json(a.get("failure")) for a in (row or {}).get("attempts") or []]
    return [f.kind for f in failures if f is not None]


class Recovery(Generic[R]):
    """The attempts of one sweep: each trial's latest result, summary row, attempts and
    the kinds its attempts failed for."""

    def __init__(
        self, sweep: SweepSpec, settings: RecoverySettings, first: Round[R], attempts: Optional[Dict[int, int]] = None
    ) -> None:
        self.sweep, self.settings = sweep, settings
        self.planned = {t.number: t for t in sweep.trials}
        if first.summary is not None:  # each failed trial's kind, from all the evidence
            with_failures(first.summary, first.failures)
        self.results: Dict[int, R] = dict(first.results)
        self.completed = set(first.completed)
        self.rows = {int(r["number"]): r for r in (first.summary or {}).get("trials", [])}
        self.attempts = {t.number: (attempts or {}).get(t.number, 1) for t in sweep.trials}
        self.failures = dict(first.failures)
        self.kinds = {n: failed_kinds(self.rows.get(n)) or [f.kind] for n, f in first.failures.items()}
        self.summary = first.summary
        self.jobs = [first.resource_name]

    def run(self, submit_round: Callable[[int, SweepSpec], Round[R]]) -> None:
        """Attempts (`submit_round(N, the attempt's sweep)`) until no failed trial is
        recoverable."""
        while True:
            recovered = to_recover(self.failures, self.attempts, self.settings)
            if not recovered:
                return
            attempt = max(self.attempts[n] for n in recovered) + 1
            self._announce(recovered, attempt)
            trials = {n: self.kinds.get(n, []) for n in recovered}
            sweep = attempt_sweep(self.sweep, trials, sorted(self.completed), attempt)
            for trial in sweep.trials:
                fallback = ran_on(trial) if trial.number in recovered else None
                if fallback:
                    log.warning(f"Recovery: trial {trial.number} runs on {fallback_text(fallback)}")
            self.add(submit_round(attempt, sweep), attempt)

    def _announce(self, recovered: Dict[int, Failure], attempt: int) -> None:
        why = ", ".join(f"{n} ({f.kind.value})" for n, f in sorted(recovered.items()))
        log.warning(
            f"Recovery: attempt {attempt} of {self.settings.max_attempts} for {len(recovered)} trials, as a new "
            f"PipelineJob of run {self.sweep.run_id} (trials that completed are cache hits): trial {why}"
        )
        if any(f.kind is FailureKind.QUOTA for f in recovered.values()) and self.settings.quota_backoff:
            log.warning(f"Recovery: waiting {self.settings.quota_backoff:.0f} s (quota_backoff) after a quota error")
            time.sleep(self.settings.quota_backoff)

    def add(self, result: Round[R], attempt: int) -> None:
        """Takes the results of the trials attempt N ran again (those that had not completed
        and had made fewer attempts); the other trials keep theirs."""
        if result.summary is not None:
            with_failures(result.summary, result.failures)
        new_rows = {int(r["number"]): r for r in (result.summary or {}).get("trials", [])}
        for number, returned in result.results.items():
            if number in self.completed or self.attempts.get(number, attempt) >= attempt:
                continue
            # The fallback this attempt ran on, as the kinds before it chose it.
            fallback = ran_on(for_attempt(self.planned[number], self.kinds.get(number, [])))
            self.results[number] = returned
            self.attempts[number] = attempt
            failure = result.failures.get(number)
            if failure is None:
                self.failures.pop(number, None)
            else:
                self.failures[number] = failure
                self.kinds.setdefault(number, []).append(failure.kind)
            if number in result.completed:
                self.completed.add(number)
            earlier = self.rows.get(number, {}).get("attempts") or []
            row = new_rows.get(number) or self.rows.get(number)
            if row is not None:
                entry = attempt_entry(attempt, number in result.completed, new_rows.get(number), failure, fallback)
                self.rows[number] = {**row, "attempts": [*earlier, entry], "fallback": fallback}
        self.summary = result.summary or self.summary
        self.jobs.append(result.resource_name)

    def ordered(self) -> List[R]:
        """Every trial's latest result, in the sweep's order."""
        return [self.results[t.number] for t in self.sweep.trials]

    def final_summary(self) -> Optional[Dict[str, Any]]:
        """The sweep's summary over every attempt (None if no attempt's collector wrote one)."""
        if self.summary is None:
            return None
        return merged_summary(self.summary, self.rows, self.sweep.cost_rates)
