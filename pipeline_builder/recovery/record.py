"""What a sweep dir records for `recover`: each submitted batch's sweep, how its PipelineJobs
are created, its recovery settings and failure rules, and every PipelineJob it has had."""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines.components.failures import Rule, rules_from_json
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..cloud import gcs
from ..cloud.vertex import VertexTarget
from ..spec.manifest import RESUBMISSION_KEYS, JobSettings, read_manifest
from ..spec.sweep import SweepSpec
from .attempts import DEFAULT_MAX_ATTEMPTS, RecoverySettings


class RecoverError(RuntimeError):
    """A sweep `recover` cannot work on; the message says why and what would do."""


@dataclass(frozen=True)
class SweepRecord:
    """One submitted batch of a sweep dir, as its manifest records it."""

    manifest_path: Path
    manifest: Dict[str, Any]
    sweep: SweepSpec
    job: JobSettings
    job_id: str  # the first PipelineJob's id: each attempt's is `<job_id>-attempt-N`
    recovery: RecoverySettings
    rules: Tuple[Rule, ...]
    target: VertexTarget
    jobs: Tuple[str, ...]  # every PipelineJob of the sweep, oldest first

    @property
    def sweep_dir(self) -> Path:
        return self.manifest_path.parent


def read_record(path: Path) -> SweepRecord:
    """The batch whose manifest is `path`; RecoverError if it was not submitted, or was
    written before manifests recorded what a new PipelineJob of the sweep needs."""
    data = read_manifest(path)
    where = data.get("vertex")
    if not where:
        raise RecoverError(f"{path} is not of a submitted run (mode={data.get('mode')}): there is nothing in Vertex to recover")
    missing = [key for key in RESUBMISSION_KEYS if key not in data]
    if missing:
        raise RecoverError(
            f"{path} lacks what recovery needs ({', '.join(missing)}): it was written by an earlier version of this "
            "launcher, which did not record the sweep's trials and submit settings. Run the sweep again with "
            f"hydra.launcher.resume={path.parent} instead: Vertex's cache skips the trials that succeeded"
        )
    gcs.use_recorded_emulator(where.get("storage_emulator_host"))
    try:
        return SweepRecord(
            manifest_path=Path(path),
            manifest=data,
            sweep=SweepSpec.from_dict(data["sweep"]),
            job=JobSettings.from_json(data["job_settings"]),
            job_id=str(data["job_id"]),
            recovery=RecoverySettings.from_json(data["recovery"]),
            rules=rules_from_json(data.get("failure_rules") or []),
            target=VertexTarget(where["project"], where["location"], where.get("api_endpoint")),
            jobs=tuple(where.get("jobs") or [where["resource_name"]]),
        )
    except (KeyError, TypeError, ValueError) as e:  # edited by hand, or by another version
        raise RecoverError(f"{path}: what it records for recovery cannot be read ({type(e).__name__}: {e})") from None


def sweep_records(target: Path) -> List[SweepRecord]:
    """Every submitted batch of a sweep dir (or the one of a manifest), in file order."""
    if not target.exists():
        raise RecoverError(f"{target} does not exist: expected a sweep dir or its manifest.json")
    manifests = SweepFiles.manifests_in(target)
    submitted = [m for m in manifests if read_manifest(m).get("vertex")]
    if not submitted:
        raise RecoverError(f"{target} holds no manifest of a submitted run")
    return [read_record(m) for m in submitted]


def with_max_attempts(recorded: RecoverySettings, max_attempts: Optional[int]) -> RecoverySettings:
    """The settings `recover` uses: `--max-attempts` when given, else the sweep's own
    setting, or DEFAULT_MAX_ATTEMPTS when the sweep asked for none (max_attempts=1)."""
    if max_attempts is None:
        max_attempts = recorded.max_attempts if recorded.max_attempts > 1 else DEFAULT_MAX_ATTEMPTS
    return dataclasses.replace(recorded, max_attempts=max_attempts)


def attempt_of(resource_name: str) -> int:
    """The attempt a PipelineJob of a sweep is, from its id (`...-attempt-N`; else 1)."""
    found = re.search(r"-attempt-(\d+)$", resource_name)
    return int(found.group(1)) if found else 1


def job_manifest(record: SweepRecord, resource_name: str) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """The manifest (path, data) written with the PipelineJob `resource_name` of the sweep:
    the batch's own, or an attempt's in recovery/attempt-N/."""
    if (record.manifest.get("vertex") or {}).get("resource_name") == resource_name:
        return record.manifest_path, record.manifest
    folder = record.sweep_dir / SweepFiles.RECOVERY / f"attempt-{attempt_of(resource_name)}"
    for path in SweepFiles.manifests_in(folder) if folder.is_dir() else []:
        data = read_manifest(path)
        if (data.get("vertex") or {}).get("resource_name") == resource_name:
            return path, data
    return None
