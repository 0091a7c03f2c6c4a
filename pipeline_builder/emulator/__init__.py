"""The offline Vertex AI services: `VertexEmulator` (PipelineJobs, CustomJobs, the
metadata of experiments) and `serve`, which runs it beside a Cloud Storage emulator.

Its names load their module when first used: the launcher helper preloads
`emulator.gcpc_client`, which imports this package first and must not cost it the
server's imports.
"""

from typing import TYPE_CHECKING, Dict

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:  # the names as type checkers see them; at run time, lazy_exports' __getattr__ below
    from .custom_jobs import JobService as JobService
    from .job_store import JobStore as JobStore
    from .metadata import MetadataService as MetadataService
    from .pipeline_jobs import PipelineJobs as PipelineJobs
    from .server import VertexEmulator as VertexEmulator
    from .serving import serve as serve
    from .storage import DataDir as DataDir
    from .storage import StorageServer as StorageServer

# name -> its module, as imported above
_EXPORTS: Dict[str, str] = {
    "DataDir": "storage",
    "JobService": "custom_jobs",
    "JobStore": "job_store",
    "MetadataService": "metadata",
    "PipelineJobs": "pipeline_jobs",
    "StorageServer": "storage",
    "VertexEmulator": "server",
    "serve": "serving",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
