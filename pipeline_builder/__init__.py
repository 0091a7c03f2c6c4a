"""Hydra-agnostic: trial specs -> KFP pipeline -> pipeline.yaml, and the manifest beside it.

Importing this package is cheap; kfp is imported only when a pipeline is compiled.
"""

from .errors import ConfigError
from .spec.settings import TrialSettings
from .spec.cloud_paths import PathMap, gcs_to_fuse
from .spec.trials import TrialSpec, build_trial

__all__ = ["ConfigError", "PathMap", "TrialSettings", "TrialSpec", "build_trial", "gcs_to_fuse"]
