"""This machine's cache folder for the launcher, one subfolder per kind of thing it keeps:
`$XDG_CACHE_HOME/hydra-vertex-pipelines-launcher/` (`~/.cache/...` without XDG_CACHE_HOME).

What is kept there is only ever a shortcut (a built wheel, a CustomJob check's verdict, a
compiled pipeline): deleting the folder makes the next run slower, never different. So
the verdicts and compiled pipelines are entries that a run marks as used when it reads
one, and an entry no run used for KEEP_DAYS days is removed (looked for at most once a
day per folder, when an entry is written).
"""

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from hydra_vertex_pipelines.components.atomic_write import write_atomic

FOLDER = "hydra-vertex-pipelines-launcher"
KEEP_DAYS = 30  # an entry no run used for this long is removed
_DAY_S = 86400.0
_PRUNED = ".pruned"  # in a folder of entries: its time is the folder's last look for old ones
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


def read_entry(path: Path) -> Optional[str]:
    """An entry's text, the entry marked as used now; None if there is none (or it cannot
    be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return text


def write_entry(folder: Path, path: Path, text: str) -> bool:
    """Writes the entry at `path` in `folder` atomically, and removes the folder's entries
    that no run used for KEEP_DAYS days, at most once a day. False if it could not be
    written: a cache that cannot be written is only slower."""
    try:
        write_atomic(path, text)
    except OSError:
        return False
    prune(folder)
    return True


def prune(folder: Path, now: Optional[float] = None) -> None:
    """Removes the entries under `folder` that no run used for KEEP_DAYS days, unless that
    was done less than a day ago."""
    now = time.time() if now is None else now
    marker = folder / _PRUNED
    try:
        if now - marker.stat().st_mtime < _DAY_S:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    oldest = now - KEEP_DAYS * _DAY_S
    for path in folder.rglob("*"):
        try:
            if path.name != _PRUNED and path.is_file() and path.stat().st_mtime < oldest:
                path.unlink()
        except OSError:
            continue
    try:
        marker.touch()
        os.utime(marker, (now, now))
    except OSError:
        pass


def replaced(value: Any, pairs: Sequence[Tuple[str, str]]) -> Any:
    """`value` (text, or JSON data) with each `old` text replaced by its `new` one, in
    strings and keys, in the pairs' order: how a cache entry's run-specific values become
    placeholders and back."""
    if isinstance(value, str):
        for old, new in pairs:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [replaced(v, pairs) for v in value]
    if isinstance(value, dict):
        return {replaced(k, pairs): replaced(v, pairs) for k, v in value.items()}
    return value
