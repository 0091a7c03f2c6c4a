"""Code that runs inside the pipeline: the collector and its KFP component."""
