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


def _warm_parsers() -> None:
    """Hydra's override parser and OmegaConf's interpolation grammar (both ANTLR) build
    their lookup tables as they parse, and keep them for the process: parsed once here,
    the usual shapes of overrides and interpolations cost each trial nothing to learn.
    Parsing only; nothing is composed, resolved or registered."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.grammar_parser import parse

    OverridesParser.create().parse_overrides(
        ["a=1", "+b.c=x", "~d", "++e=[1,2]", "f={a:1,b:[x]}", "g=range(3)", "h=choice(1,2)", "hydra/launcher=basic",
         "i=${j}", "k='s'", "l=1.5", "m=null", "n=true", "o=-3", "p=a_b-c.d", 'q="x y"', "r=interval(0,1)",
         "s=tag(a,choice(1,2))", "t=sort([3,1])", "w=/a/b:c", "x=1e-3", "y=${now:%Y}"]
    )  # fmt: skip
    for value in ("${a}", "x_${a}_y", "${oc.env:HOME,x}", "${now:%Y-%m-%d}/${now:%H-%M-%S}", "${.a}", "${a.b[0]}",
                  "${hydra:runtime.cwd}", "${oc.decode:'[1]'}", "${x:1,2.5,[a],{b:c}}", "plain text"):  # fmt: skip
        parse(value)


try:
    _warm_parsers()
except Exception:  # only a head start: a parser that changed must not stop the trials
    pass
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
