"""Recovery: a sweep's trials that failed for the cloud's reasons run again, as new
PipelineJobs of the same sweep. The attempts (`attempts`), the summary over all of them
(`summary`), how a PipelineJob of the sweep is created (`submission`), and `recover` of a
sweep dir (`record`, `sweep_dir`), used by the launcher and the command line alike.

Imports spec, cloud and (to compile an attempt, lazily) the pipeline; never Hydra.
"""

from .attempts import (
    DEFAULT_MAX_ATTEMPTS,
    RERUN_LABEL,
    Recovery,
    RecoverySettings,
    Round,
    attempt_job_id,
    attempt_sweep,
    recovered_trial,
    to_recover,
)
from .record import RecoverError, SweepRecord, read_record, sweep_records
from .submission import Uploaded, submit_job, upload_run_files
from .summary import merged_summary, publish, with_run_usage
from .sweep_dir import Recovered, recover_sweep

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "RERUN_LABEL",
    "RecoverError",
    "Recovered",
    "Recovery",
    "RecoverySettings",
    "Round",
    "SweepRecord",
    "Uploaded",
    "attempt_job_id",
    "attempt_sweep",
    "merged_summary",
    "publish",
    "read_record",
    "recover_sweep",
    "recovered_trial",
    "submit_job",
    "upload_run_files",
    "sweep_records",
    "to_recover",
    "with_run_usage",
]
