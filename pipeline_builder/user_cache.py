"""This machine's cache folder for the launcher, one subfolder per kind of thing it keeps:
`$XDG_CACHE_HOME/hydra-vertex-pipelines-launcher/` (`~/.cache/...` without XDG_CACHE_HOME).

What is kept there is only ever a shortcut (a built wheel, a CustomJob check's verdict, a
compiled pipeline): deleting the folder makes the next run slower, never different.
"""

import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

FOLDER = "hydra-vertex-pipelines-launcher"
_OFF = ("0", "false", "no", "off")


def cache_path(*parts: str) -> Path:
    """`parts` under the launcher's cache folder."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root, FOLDER, *parts)


def turned_off(variable: str) -> bool:
    """Whether the environment variable `variable` turns a cache off (0, false, no, off)."""
    return os.environ.get(variable, "1").strip().lower() in _OFF


def installed(distributions: Sequence[str]) -> Dict[str, Optional[str]]:
    """The installed version of each distribution (None: not installed), and Python's: what
    a kept shortcut made by their code depends on."""
    from importlib import metadata

    found: Dict[str, Optional[str]] = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = "%d.%d" % sys.version_info[:2]
    return found
