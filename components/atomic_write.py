"""The one way this project replaces a file: whole, or not at all.

A reader (the collector, a following launcher, a restarted emulator) never sees half a
file, and a write that fails (a full disk, a stop) leaves the previous version and no
temporary file behind. Standard library only: trials and the collector's image use it.
"""

import os
import threading
from pathlib import Path
from typing import Union


def write_atomic(path: Union[str, "os.PathLike[str]"], data: Union[str, bytes]) -> None:
    """Writes `data` (text as UTF-8) to `path` through a temporary file beside it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(temporary, "wb") as f:
            f.write(payload)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
