"""Imported once by the local runner's fork server: the slow part of every trial's start-up.

Hydra imports every installed Hydra plugin when an app starts. Doing it once here, before
the server forks a process per trial, spares each trial that work. The plugin registry is
then dropped, so each trial still discovers plugins itself, with its own sys.path.
"""

import hydra  # noqa: F401
import hydra._internal.hydra  # noqa: F401
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton

import hydra_plugins.vertex_pipelines_launcher.callbacks  # noqa: F401

Plugins.instance()
Singleton._instances.pop(Plugins, None)
