"""The offline Vertex AI services: `VertexEmulator` (PipelineJobs, CustomJobs, the
metadata of experiments) and `serve`, which runs it beside a Cloud Storage emulator.

Its names load their module when first used: the launcher helper preloads
`emulator.gcpc_client`, which imports this package first and must not cost it the
server's imports.
"""

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:  # the names as type checkers see them; at run time, __getattr__ below
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))
