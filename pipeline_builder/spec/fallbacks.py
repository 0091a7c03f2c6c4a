"""Which settings a trial's next attempt runs on: its own, or one of `trial.fallbacks`.

The rule (README, "Recovery"): count the trial's earlier attempts that failed because the
cloud had no machine for it (preempted, out of capacity, or a Flex-start wait that
expired): k. k = 0: the trial's own settings; k >= 1: fallbacks[min(k, n) - 1], each
fallback applied on top of the trial's settings and the fallbacks before it. A failure of
another kind (quota, internal, ...) says nothing about the machine, so it does not move
the trial to its next fallback.

Every fallback was checked and turned into worker pools and job settings when the sweep
was planned (`trials.build_trial`), so choosing one only swaps precomputed values: no
Hydra, no check that could fail after the sweep started.
"""

import dataclasses
from typing import Any, Dict, Iterable, Optional, Union

from hydra_vertex_pipelines.components.failures import FailureKind

from .trials import TrialSpec

# The failures that say the trial's machine was not to be had.
FALLBACK_KINDS = frozenset({FailureKind.PREEMPTED, FailureKind.CAPACITY, FailureKind.FLEX_START_EXPIRED})


def fallback_index(fallbacks: int, kinds: Iterable[Union[str, FailureKind, None]]) -> Optional[int]:
    """The fallback (0-based) an attempt runs after earlier attempts that failed for
    `kinds` (None for one that completed), of `fallbacks` given; None: the trial's own settings."""
    k = sum(1 for kind in kinds if kind is not None and FailureKind(kind) in FALLBACK_KINDS)
    return None if k == 0 or fallbacks == 0 else min(k, fallbacks) - 1


def for_attempt(trial: TrialSpec, kinds: Iterable[Union[str, FailureKind, None]]) -> TrialSpec:
    """The trial as its next attempt runs it, after attempts that failed for `kinds`: the
    same number, folder and display name, on the fallback's machines and scheduling.
    `trial` is the trial as planned (its own settings)."""
    if trial.fallback is not None:
        raise ValueError(f"trial {trial.number} already runs fallback {trial.fallback}: pass the trial as planned")
    index = fallback_index(len(trial.fallbacks), kinds)
    if index is None:
        return trial
    chosen = trial.fallbacks[index]
    return dataclasses.replace(
        trial,
        worker_pool_specs=tuple(dict(p) for p in chosen["worker_pool_specs"]),
        job_settings=dict(chosen["job_settings"]),
        fallback=index,
    )


def ran_on(trial: TrialSpec) -> Optional[Dict[str, Any]]:
    """What summary.json says of the settings an attempt ran on: None for the trial's own,
    else {index, settings: what the fallback changed from the trial's own settings}."""
    if trial.fallback is None:
        return None
    return {"index": trial.fallback, "settings": dict(trial.fallbacks[trial.fallback]["settings"])}

