"""Hydra launcher plugin: each multirun sweep becomes one Vertex AI pipeline.

Hydra imports every module of this package when it scans for plugins, in every Hydra app
(trials included), so the modules here import nothing heavy at module level.
"""

__version__ = "0.1.0"
