"""What a sweep is, as plain data checked before anything is written or sent: trial
settings, their checks, trial and sweep specs, Vertex's names, cloud paths, the manifest.

Standard library only (and this package's errors and components): kfp, Hydra and the
Google Cloud clients are never imported here.
"""

from .cloud_paths import PathMap
from .manifest import manifest_beside, manifest_data, read_manifest, stage_files, write_manifest
from .settings import PackageSettings, TrialSettings, WorkerPoolSettings, trial_settings
from .sweep import SweepSpec
from .trials import TrialSpec, build_trial, retry_policy, trial_rows, worker_pool_specs
from .validation import (
    ENTRIES,
    LAUNCHER_SETTINGS,
    check_arguments,
    check_kms_key,
    check_launcher_settings,
    check_trial_settings,
)
from .values import check_gcs_uri, check_one_of, duration

__all__ = [
    "ENTRIES",
    "LAUNCHER_SETTINGS",
    "PackageSettings",
    "PathMap",
    "SweepSpec",
    "TrialSettings",
    "TrialSpec",
    "WorkerPoolSettings",
    "build_trial",
    "check_arguments",
    "check_gcs_uri",
    "check_kms_key",
    "check_launcher_settings",
    "check_one_of",
    "check_trial_settings",
    "duration",
    "manifest_beside",
    "manifest_data",
    "read_manifest",
    "retry_policy",
    "stage_files",
    "trial_rows",
    "trial_settings",
    "worker_pool_specs",
    "write_manifest",
]
