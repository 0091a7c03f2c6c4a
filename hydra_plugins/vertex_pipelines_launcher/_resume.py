"""Resuming a submitted sweep: the same run id and trial folders, a new PipelineJob.

Vertex's cache recognises a trial that succeeded only if it runs with the same inputs,
so the resumed sweep must be the same sweep: same pipeline root, pipeline and trials. A
trial whose result is no longer in the bucket gets inputs of its own (a label), so the
cache cannot skip it without a result.
"""

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import AbstractSet, List, NamedTuple, Sequence, Tuple

from hydra_vertex_pipelines.components.sweep_files import SweepFiles, TrialFiles
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.recovery.attempts import RERUN_LABEL
from hydra_vertex_pipelines.pipeline_builder.spec.names import label_value
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._choices import FIELD, Mode


class Resumed(NamedTuple):
    run_id: str  # the earlier run's: its trials keep their folders
    job_id: str  # the new PipelineJob's id


def resumed_run(
    resume: str,
    *,
    mode: Mode,
    caching: bool,
    pipeline_root: str,
    pipeline_name: str,
    tag: str,
    job_overrides: Sequence[Sequence[str]],
) -> Resumed:
    """Checks that `resume` names an earlier submitted run of this very sweep batch."""
    field = f"{FIELD}.resume"
    if mode is not Mode.SUBMIT:
        raise ConfigError(field, resume, "null unless mode=submit: Vertex's cache is what skips the trials that succeeded")
    if not caching:
        raise ConfigError(
            f"{FIELD}.enable_caching", False, "null or true with resume: the cache is what skips the trials that succeeded"
        )
    path = Path(resume)
    manifest = SweepFiles(path, tag).manifest if path.is_dir() else path
    accepted = "the sweep dir (or its manifest.json) of an earlier submitted run of this sweep"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        run_id = str(data["run_id"])
        old_root = str(data["pipeline_root"])
        old_name = str(data["pipeline_name"])
        old_overrides: List[List[str]] = [list(t["overrides"]) for t in data["trials"]]
        old_mode = data.get("mode", Mode.SUBMIT.value)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(field, resume, accepted, f"{manifest}: {type(e).__name__}: {e}") from None
    if old_mode != Mode.SUBMIT.value:
        raise ConfigError(field, resume, accepted, f"{manifest} is a {old_mode} run: nothing of it is in Vertex's cache")
    if old_root != pipeline_root:
        raise ConfigError(f"{FIELD}.pipeline_root", pipeline_root, f"{old_root}, the pipeline root of the run being resumed")
    if old_name != pipeline_name:
        raise ConfigError(f"{FIELD}.pipeline_name", pipeline_name, f"{old_name}, the pipeline of the run being resumed")
    new = [list(o) for o in job_overrides]
    if new != old_overrides:
        first = next(
            (i for i, (a, b) in enumerate(zip(new, old_overrides, strict=False)) if a != b), min(len(new), len(old_overrides))
        )
        theirs = " ".join(old_overrides[first]) if first < len(old_overrides) else "no such trial"
        ours = " ".join(new[first]) if first < len(new) else "no such trial"
        raise ConfigError(
            field,
            resume,
            f"{accepted}: the same trials in the same order ({len(old_overrides)} there, {len(new)} here)",
            f"trial {first} is '{ours}' here and '{theirs}' in {manifest}",
        )
    return Resumed(run_id, f"{run_id}-resume-{time.strftime('%Y%m%d-%H%M%S')}")


# RERUN_LABEL: on a resumed trial that runs again because its result is gone (recovery's label too)


def rerun_lost_results(
    trials: Sequence[TrialSpec], stored: AbstractSet[str], job_id: str
) -> Tuple[Tuple[TrialSpec, ...], List[TrialSpec]]:
    """The trials with those whose result.json is not among the `stored` objects labelled
    `hydra-rerun=<this resume>`, and those trials. A trial that succeeded before would be
    a cache hit with nothing to read; the label changes its CustomJob's inputs, so its
    cache key, and no other trial's."""
    stamp = label_value(job_id.rsplit("-resume-", 1)[-1])
    lost = [t for t in trials if TrialFiles(t.output_uri).result not in stored]
    numbers = {t.number for t in lost}
    relabelled = tuple(replace(t, labels={**t.labels, RERUN_LABEL: stamp}) if t.number in numbers else t for t in trials)
    return relabelled, lost
