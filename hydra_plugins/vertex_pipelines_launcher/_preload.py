"""Imported once by the local runner's fork server: the slow part of every trial's start-up.

Hydra imports every installed Hydra plugin when an app starts. Doing it once here, before
the server forks a process per trial, spares each trial that work, and so do the modules
Hydra imports only once it composes a config. The plugin registry is then set aside: a
trial whose sys.path gives the same `hydra_plugins` folders uses it (`restore_plugins`),
since Hydra's discovery would find the same plugins there; a trial with other folders
discovers plugins itself. The entry modules the trials run with `-m` are dropped, since
runpy wants to import them fresh.
"""

import importlib
import sys
from typing import Any, Set

import hydra  # noqa: F401
import hydra._internal.hydra  # noqa: F401
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton

import hydra_plugins
import hydra_plugins.vertex_pipelines_launcher.trial_record  # noqa: F401


def _plugin_folders() -> Set[str]:
    return set(hydra_plugins.__path__)


# What a job's first compose imports (the override parser's, logging's, OmegaConf's).
for _late in ("antlr4.LL1Analyzer", "hydra._internal.logging_config", "omegaconf._impl", "locale", "importlib.readers"):
    importlib.import_module(_late)
Plugins.instance()
_scanned: Any = Singleton._instances.pop(Plugins, None)
_scanned_in = _plugin_folders()
for _entry in ("trial_entry", "pickle_entry"):
    sys.modules.pop(f"hydra_plugins.vertex_pipelines_launcher.{_entry}", None)
    vars(hydra_plugins.vertex_pipelines_launcher).pop(_entry, None)


def restore_plugins() -> None:
    """In a forked trial whose sys.path is set: the plugins found here, if that sys.path
    gives the same `hydra_plugins` folders (Hydra's discovery would find the same ones)."""
    if _scanned is not None and Plugins not in Singleton._instances and _plugin_folders() == _scanned_in:
        Singleton._instances[Plugins] = _scanned
