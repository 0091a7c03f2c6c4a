"""The interpreter every task process starts from: `python` on PATH, and /gcs/ routed in it.

A task's command names `python` or `python3`, meaning the image's interpreter; here it is
the run's (a venv's included), through shims put first on PATH. Python processes started
afresh route /gcs/ paths to local folders through a sitecustomize (the fuse module's own
source), which then runs the sitecustomize it hides, if any.
"""

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional

from ..spec.cloud_paths import PathMap
from . import fuse

_SITECUSTOMIZE_TAIL = '''

install_from_environment()


def _next_sitecustomize() -> None:
    """Runs the sitecustomize this one hides, if the path has another."""
    import importlib.machinery
    import importlib.util
    import sys

    # Every one of these met so far is skipped: a run inside a trial adds its own.
    seen = sys.__dict__.setdefault("_hydra_vertex_local_sitecustomize", set())
    seen.add(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if os.path.abspath(p or ".") not in seen]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_next_sitecustomize()
'''


def write_interpreter_files(shim_dir: Path, site_dir: Path, python: str) -> None:
    """`python` and `python3` in `shim_dir` that start `python` (venv included), and the
    sitecustomize in `site_dir` that routes /gcs/ in Python processes started afresh."""
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        shim = shim_dir / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    site_dir.mkdir(parents=True, exist_ok=True)
    source = Path(fuse.__file__).read_text(encoding="utf-8")
    (site_dir / "sitecustomize.py").write_text(source + _SITECUSTOMIZE_TAIL, encoding="utf-8")


@dataclass(frozen=True)
class TaskInterpreter:
    """The `python` of a run's tasks and the environment their processes start from."""

    python: str
    folder: Path  # holds bin/ (the shims) and site/ (the sitecustomize)
    paths: PathMap  # where /gcs/ leads
    extra_env: Mapping[str, str] = field(default_factory=dict)  # the caller's own variables

    @property
    def bin_dir(self) -> Path:
        return self.folder / "bin"

    @property
    def site_dir(self) -> Path:
        return self.folder / "site"

    def write(self) -> None:
        write_interpreter_files(self.bin_dir, self.site_dir, self.python)

    def environment(self, tmp: Optional[str] = None) -> Dict[str, str]:
        """This process's environment, the caller's extra variables, `python` on PATH
        meaning this interpreter, /gcs/ routed to local folders, and TMPDIR if given."""
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(self.site_dir), env.get("PYTHONPATH", "")] if p)
        env.update(fuse.environment(self.paths.root, self.paths.prefixes))
        if tmp is not None:
            env["TMPDIR"] = tmp
        return env
