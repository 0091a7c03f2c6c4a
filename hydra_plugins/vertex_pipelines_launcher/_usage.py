"""Machine-hours for the launcher's final log line, and in submit mode from the CustomJobs:
pipeline_builder's recovery.summary is their one home (`recover` uses them too)."""

from hydra_vertex_pipelines.pipeline_builder.recovery.summary import (
    JOBS_SOURCE,
    job_usages,
    read_summary,
    rewrite,
    summary_usage_text,
    with_job_usage,
    with_run_usage,
)

__all__ = ["JOBS_SOURCE", "job_usages", "read_summary", "rewrite", "summary_usage_text", "with_job_usage", "with_run_usage"]
