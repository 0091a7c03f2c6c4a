"""How one local run runs, as one value checked when it is made.

A wrong type fails here, naming the setting, rather than in a task thread later.
"""

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

from ..spec.cloud_paths import PathMap
from .resolver import RunContext


@dataclass(frozen=True)
class RunnerSettings:
    """Where a run's cloud paths and work files live and how its tasks start.

    - `paths`: where gs:// and /gcs/ paths lead on this machine.
    - `work_dir`: the run's own files (task folders, run.json, the interpreter shims).
    - `max_parallel`: tasks at once, as given (I/O-bound tasks gain from more than one per
      CPU); None: one per CPU.
    - `cwd`: the folder task commands start in (the image's working directory); None:
      this process's current folder.
    - `extra_env`: variables every task gets on top of this process's.
    - `python`: the interpreter a task's `python` means.
    - `parameters`: the pipeline's parameter values.
    - `preload`: modules a fork server imports once for all Python commands; None: no
      fork server (each command starts a fresh interpreter), unless one is given.
    - `context`: the values of the run's pipeline-level placeholders; None: a local run's.
    """

    paths: PathMap
    work_dir: Union[str, "os.PathLike[str]"]
    max_parallel: Optional[int] = None
    cwd: Optional[str] = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable
    parameters: Mapping[str, Any] = field(default_factory=dict)
    preload: Optional[Sequence[str]] = None
    context: Optional[RunContext] = None

    def __post_init__(self) -> None:
        _expect("paths", self.paths, PathMap, "a PathMap")
        _expect("work_dir", self.work_dir, (str, os.PathLike), "a path")
        limit = self.max_parallel
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"max_parallel must be None or a whole number from 1, not {self.max_parallel!r}")
        if self.cwd is not None:
            _expect("cwd", self.cwd, str, "a folder's path")
        _expect("extra_env", self.extra_env, Mapping, "a mapping of names to text")
        bad = [k for k, v in self.extra_env.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"extra_env must map names to text: {bad[0]!r} does not")
        if not isinstance(self.python, str) or not self.python:
            raise ValueError(f"python must name an interpreter, not {self.python!r}")
        _expect("parameters", self.parameters, Mapping, "a mapping of parameter names to values")
        if self.preload is not None and (isinstance(self.preload, str) or not all(isinstance(m, str) for m in self.preload)):
            raise TypeError(f"preload must be a list of module names or None, not {self.preload!r}")
        if self.context is not None:
            _expect("context", self.context, RunContext, "a RunContext")

    def parallel_limit(self) -> int:
        """The most tasks running at once: `max_parallel` as given, never capped at the CPU
        count (trials that wait on the network or disk gain from more), or one per CPU."""
        return self.max_parallel or cpu_count()


def cpu_count() -> int:
    """This machine's CPUs, as local mode counts them: one task per CPU by default, and
    one forked trial's start-up per CPU at a time."""
    return os.cpu_count() or 1


def _expect(name: str, value: Any, kind: Any, shown: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {shown}, not {type(value).__name__}")
