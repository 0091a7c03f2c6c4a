"""Hydra launcher plugin: each multirun sweep becomes one Vertex AI pipeline.

Hydra executes every public module of this package when it scans for plugins, in every
Hydra app (trials included), so the modules here import nothing heavy at module level.
The launch itself starts in `launcher.py` and runs in the private modules: `_core` plans
the batch (`_planning`) and hands it to its mode (`_compile`, `_local`, `_submit`).
"""

__version__ = "0.1.0"
