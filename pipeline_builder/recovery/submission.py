"""Creating a PipelineJob of a sweep and recording it: the one way both the launcher and
`recover` submit, so every PipelineJob of a sweep is created with the same settings."""

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ..cloud import gcs, vertex
from ..spec.manifest import JobSettings, write_manifest


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
