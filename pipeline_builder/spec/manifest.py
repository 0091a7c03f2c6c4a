"""The manifest: what a sweep batch is, written before anything leaves the machine.

It lists every trial (number, overrides, output paths, job id) so a run can be inspected,
re-attached or resumed from the sweep dir alone. A submitted or compiled batch's manifest
also holds what a new PipelineJob of the sweep needs (`recover` and `submit` build one from
it, without the app):
the whole sweep (every trial's CustomJob, env values included, as pipeline.yaml holds them:
they were checked for secrets), the PipelineJob's settings, the recovery settings and the
failure rules; a compiled one, the target its launch knew and its pipeline file's digest.
It holds no credentials.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import WriteFailed, write_atomic
from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from .cloud_paths import PathMap
from .sweep import SweepSpec

FORMAT_VERSION = 1
# What a submitted batch's manifest records for a new PipelineJob of its sweep: older
# manifests lack these keys.
RESUBMISSION_KEYS = ("sweep", "job_settings", "job_id", "recovery")
# A compiled batch's manifest also records where its PipelineJob was meant to go
# (`submit`'s flags fill or override it) and its pipeline file's digest.
TARGET_KEYS = ("project", "location", "api_endpoint")


def pipeline_digest(data: bytes) -> str:
    """The manifest's `pipeline_sha256`: `submit` refuses a pipeline file edited since."""
    return hashlib.sha256(data).hexdigest()


def compiled_target(target: Any) -> Dict[str, Optional[str]]:
    """The manifest's `target` of a compiled batch: a VertexTarget's fields, "" or None
    where the launch did not know them."""
    return {key: getattr(target, key) for key in TARGET_KEYS}


@dataclass(frozen=True)
class JobSettings:
    """How a PipelineJob of the sweep is created, besides its pipeline and id: the same for
    every PipelineJob of a sweep, whoever submits it (the launcher, `recover`)."""

    display_name: str
    labels: Dict[str, str]
    enable_caching: Optional[bool]
    failure_policy: Optional[str]
    service_account: Optional[str] = None
    network: Optional[str] = None
    reserved_ip_ranges: Tuple[str, ...] = ()
    experiment: Optional[str] = None
    encryption_spec_key_name: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return {**asdict(self), "reserved_ip_ranges": list(self.reserved_ip_ranges)}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "JobSettings":
        return cls(**{**data, "reserved_ip_ranges": tuple(data.get("reserved_ip_ranges") or ())})


def manifest_data(sweep: SweepSpec, pipeline_yaml: Path, /, **extra: Any) -> Dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "created": iso_utc(),
        "pipeline_name": sweep.name,
        "run_id": sweep.run_id,
        "pipeline_root": sweep.pipeline_root,
        "run_root": sweep.run_root,
        "summary_path": sweep.summary_path,
        "pipeline_yaml": str(pipeline_yaml),
        "trials_file": sweep.trials_file,
        "fan_out": sweep.fan_out,
        "parallelism": sweep.parallelism,
        **extra,
        "trials": [
            {
                "number": t.number,
                "job_id": t.job_id,
                "overrides": list(t.overrides),
                "display_name": t.display_name,
                "output_uri": t.output_uri,
                "output_dir": t.output_dir,
                "result_path": t.result_path,
            }
            for t in sweep.trials
        ],
    }


def manifest_text(data: Dict[str, Any]) -> str:
    """The manifest file's text."""
    return strict_json.dumps(data, indent=2, ensure_ascii=False)


def write_manifest(path: Path, data: Dict[str, Any]) -> Path:
    path = Path(path)
    write_atomic(path, manifest_text(data))
    return path


def read_manifest(path: Path) -> Dict[str, Any]:
    return strict_json.loads(Path(path).read_text(encoding="utf-8"))


def manifest_beside(pipeline_yaml: Path) -> Optional[Path]:
    """The manifest written with a pipeline.yaml, if it is there."""
    files = SweepFiles.of_pipeline(Path(pipeline_yaml))
    return files.manifest if files is not None and files.manifest.is_file() else None


def claim_files(batch_files: SweepFiles[Path]) -> SweepFiles[Path]:
    """Creates the batch's pipeline file, or the first free numbered variant's, atomically:
    two launches never get the same files, and earlier files are never overwritten."""
    n = 1
    while True:
        files = batch_files.claimed(n)
        try:
            with open(files.pipeline, "x"):
                return files
        except FileExistsError:
            n += 1
        except OSError as e:
            raise WriteFailed(files.pipeline, e) from None


def add_job(path: Path, resource_name: str) -> Dict[str, Any]:
    """Adds a PipelineJob of the sweep to the manifest's `vertex.jobs` (oldest first), at
    once: `status` and `cancel` then find it even if whoever submitted it stops. A job
    listed already (a launcher and `recover` adopted the same attempt) is listed once."""
    data = read_manifest(path)
    where = data.get("vertex") or {}
    jobs = where.get("jobs") or [where.get("resource_name")]
    where["jobs"] = jobs if resource_name in jobs else [*jobs, resource_name]
    data["vertex"] = where
    write_manifest(path, data)
    return data


def stage_files(manifest: Dict[str, Any], paths: PathMap) -> List[str]:
    """Puts the files a compiled run reads from its bucket (pickled jobs, a large sweep's
    trial list) where `paths` shows that bucket, for a run on this machine; returns their
    local paths. The trial list names trial folders, so those are mapped too."""
    staged = []
    for uri, source in (manifest.get("files") or {}).items():
        dest = Path(paths.local(uri))
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: the manifest lists it as {uri}, but it is gone")
        data = Path(source).read_bytes()
        if uri == manifest.get("trials_file"):
            data = json.dumps(paths.in_value(json.loads(data))).encode()
        if dest != Path(source):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        staged.append(str(dest))
    return staged
