"""Creating a PipelineJob of a sweep and recording it: the one way the launcher, `recover`
and `submit` submit, so every PipelineJob of a sweep is created with the same settings; and
the files a run reads from its bucket, uploaded before it starts."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..cloud import gcs, vertex
from ..spec.manifest import JobSettings, write_manifest


@dataclass(frozen=True)
class Uploaded:
    """What `upload_run_files` did: the run's own files written, and the shared wheels
    uploaded or found in the bucket already."""

    run_files: int = 0
    wheels: List[str] = field(default_factory=list)
    wheels_present: List[str] = field(default_factory=list)


def is_shared(uri: str, pipeline_root: str) -> bool:
    """Whether a file the run reads is a wheel under the pipeline root's packages/, shared by
    every sweep and named by its content's digest (else it is the run's own)."""
    return uri.startswith(f"{pipeline_root.rstrip('/')}/{SweepFiles.PACKAGES}/")


def upload_run_files(storage: Any, files: Mapping[str, str], pipeline_root: str, location: str) -> Uploaded:
    """Puts what the run reads from its bucket there before it starts: the manifest's
    `files` (gs:// URI -> the local copy the launch wrote in the sweep dir). The run's own
    files (pickled jobs, a large sweep's trial list) are written; a wheel only if the
    bucket lacks it (its name holds its content's digest)."""
    if files:
        gcs.ensure_bucket(storage, pipeline_root, location)
    done = Uploaded()
    for uri, local in files.items():
        if not Path(local).is_file():
            raise FileNotFoundError(f"{local}: the manifest lists it as {uri}, but it is gone")
        if not is_shared(uri, pipeline_root):
            gcs.write_bytes(storage, uri, Path(local).read_bytes())
            done = Uploaded(done.run_files + 1, done.wheels, done.wheels_present)
        elif gcs.upload_if_absent(storage, uri, local):
            done.wheels.append(uri)
        else:
            done.wheels_present.append(uri)
    return done


def submit_job(
    target: vertex.VertexTarget,
    template_path: Path,
    job_id: str,
    pipeline_root: str,
    settings: JobSettings,
    manifest_path: Path,
    manifest: Dict[str, Any],
    on_retry: Optional[Callable[[Exception], None]] = None,
) -> Any:
    """Creates the PipelineJob `job_id` (exactly once) from `template_path` and writes where
    it went into the manifest written with that pipeline file."""
    job = vertex.submit(
        target,
        template_path=str(template_path),
        job_id=job_id,
        display_name=settings.display_name,
        pipeline_root=pipeline_root,
        labels=dict(settings.labels),
        enable_caching=settings.enable_caching,
        failure_policy=settings.failure_policy,
        service_account=settings.service_account,
        network=settings.network,
        reserved_ip_ranges=list(settings.reserved_ip_ranges),
        experiment=settings.experiment,
        encryption_spec_key_name=settings.encryption_spec_key_name,
        on_retry=on_retry,
    )
    where = {
        "resource_name": job.resource_name,
        "console_url": vertex.console_url(job.resource_name, target.api_endpoint),
        "project": target.project,
        "location": target.location,
        "api_endpoint": target.api_endpoint,
        # Against the emulator, its Cloud Storage: `results` in a new terminal finds the bucket.
        "storage_emulator_host": gcs.emulator_host() if target.emulated else None,
        "jobs": [job.resource_name],  # every PipelineJob of the sweep: recovery adds its attempts'
    }
    write_manifest(manifest_path, {**manifest, "vertex": where})
    return job
