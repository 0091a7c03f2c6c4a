"""Vertex AI (submit a compiled pipeline, follow it, cancel it) and Cloud Storage.

Cheap to import: google-cloud-aiplatform and google-cloud-storage are imported on first
use, so compile and local modes never load them.
"""

from . import gcs, vertex
from .states import JobState, PipelineState, TaskDetailState
from .vertex import CredentialsError, VertexTarget, check_target, credentials, default_project

__all__ = [
    "CredentialsError",
    "JobState",
    "PipelineState",
    "TaskDetailState",
    "VertexTarget",
    "check_target",
    "credentials",
    "default_project",
    "gcs",
    "vertex",
]
