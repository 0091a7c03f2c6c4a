"""Hydra-agnostic: trial specs -> KFP pipeline -> pipeline.yaml, and the manifest beside it.

Importing this package is cheap; kfp is imported only when a pipeline is compiled.
"""

from .errors import ConfigError
from .settings import TrialSettings
from .trials import TrialSpec, build_trial, gcs_to_fuse

__all__ = ["ConfigError", "TrialSettings", "TrialSpec", "build_trial", "gcs_to_fuse"]
