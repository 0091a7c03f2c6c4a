"""Recovery in the launcher: trials that failed for the cloud's reasons run again, as new
PipelineJobs of the same sweep. The attempts themselves (which trials, labelled how, each
one's attempts, the merged summary) are pipeline_builder's recovery, which `recover` uses
too; here a trial's result is its JobReturn, and an attempt is a batch of the sweep."""

import dataclasses
from typing import Any, Dict, List, Optional

from hydra.core.utils import JobReturn, JobStatus

from hydra_vertex_pipelines.components.failures import Failure
from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.recovery import Round, attempt_job_id
from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec

from ._planning import Batch


def attempt_batch(batch: Batch, attempt: int, sweep: SweepSpec) -> Batch:
    """The sweep's batch for attempt N (its `sweep` from `attempt_sweep`): a new PipelineJob
    whose files go to the sweep dir's recovery/attempt-N."""
    return dataclasses.replace(
        batch,
        sweep=sweep,
        sweep_dir=batch.sweep_dir / SweepFiles.RECOVERY / f"attempt-{attempt}",
        job_id=attempt_job_id(batch.job_id or batch.sweep.run_id, attempt),
    )


def to_round(
    batch: Batch, returns: List[JobReturn], summary: Optional[Dict[str, Any]], failures: Dict[int, Failure], job: Any
) -> "Round[JobReturn]":
    """What one PipelineJob of the sweep ended with, its trials' JobReturns in its batch's order."""
    results = {t.number: r for t, r in zip(batch.sweep.trials, returns, strict=True)}
    completed = frozenset(n for n, r in results.items() if r.status is JobStatus.COMPLETED)
    return Round(results, completed, summary, failures, job.resource_name)
