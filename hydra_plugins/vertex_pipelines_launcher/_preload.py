"""Imported once by the local runner's fork server: the slow part of every trial's start-up.

Hydra imports every installed Hydra plugin when an app starts. Doing it once here, before
the server forks a process per trial, spares each trial that work. The plugin registry is
then dropped, so each trial still discovers plugins itself, with its own sys.path; so are
the entry modules the trials run with `-m`, which runpy wants to import fresh.
"""

import sys

import hydra  # noqa: F401
import hydra._internal.hydra  # noqa: F401
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton

import hydra_plugins.vertex_pipelines_launcher.trial_record  # noqa: F401

Plugins.instance()
Singleton._instances.pop(Plugins, None)
for _entry in ("trial_entry", "pickle_entry"):
    sys.modules.pop(f"hydra_plugins.vertex_pipelines_launcher.{_entry}", None)
    vars(hydra_plugins.vertex_pipelines_launcher).pop(_entry, None)
