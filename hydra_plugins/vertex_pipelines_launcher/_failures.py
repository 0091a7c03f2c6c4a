"""The summary and report of a run, with each failed trial's kind from all the evidence:
pipeline_builder's recovery.summary is their one home (`recover` uses them too)."""

from hydra_vertex_pipelines.pipeline_builder.recovery.summary import failure_counts, rewrite_with_failures

__all__ = ["failure_counts", "rewrite_with_failures"]
