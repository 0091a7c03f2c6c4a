"""Makes `/gcs/BUCKET/...` paths open local folders inside a Python trial, as Vertex's mount does.

On Vertex, Cloud Storage FUSE shows `gs://BUCKET/x` at `/gcs/BUCKET/x`, so a trial writes
`AIP_MODEL_DIR` (a gs:// URI) with `open(uri.replace("gs://", "/gcs/", 1) + "model.pt", "wb")`.
There is no /gcs here: in the trials it starts, the local runner routes Python's file
functions (`open`, `os.*`, and what builds on them: pathlib, shutil, glob) for paths under
/gcs/ to the local folders the run maps them to. Code outside Python's file functions (a
C library opening the path itself, a shell command) sees no /gcs: give it paths through
its arguments, which the runner maps before the process starts.

Standard library only: the runner copies this file into the `sitecustomize` of trials
started as fresh interpreters, which may not have this package installed.
"""

import builtins
import io
import json
import os
from typing import Any, Callable, Dict

VARIABLE = "HYDRA_VERTEX_LOCAL_GCS"  # {"root": DIR, "prefixes": {gs:// prefix: DIR}}
# hydra_vertex_pipelines.components.sweep_files' FUSE and GCS: this file imports nothing of the project
_FUSE, _GCS = "/gcs/", "gs://"
# Functions whose leading path argument(s) are routed.
_OS_ONE = (
    "open", "stat", "lstat", "access", "listdir", "scandir", "mkdir", "rmdir", "remove", "unlink",
    "chmod", "utime", "truncate", "readlink", "chdir",
)  # fmt: skip
_OS_TWO = ("rename", "replace", "link", "symlink")


def _mapper(root: str, prefixes: Dict[str, str]) -> Callable[[Any], Any]:
    ordered = sorted(((k.rstrip("/"), v) for k, v in prefixes.items()), key=lambda kv: len(kv[0]), reverse=True)

    def local(path: Any) -> Any:
        if isinstance(path, int):
            return path
        try:
            text = os.fspath(path)
        except TypeError:
            return path
        raw = isinstance(text, bytes)
        if raw:
            text = os.fsdecode(text)
        if not text.startswith(_FUSE):
            return path
        uri = _GCS + text[len(_FUSE) :]
        for prefix, folder in ordered:
            if uri == prefix or uri.startswith(prefix + "/"):
                mapped = folder + uri[len(prefix) :]
                break
        else:
            mapped = os.path.join(root, uri[len(_GCS) :])
        return os.fsencode(mapped) if raw else mapped

    return local


def _routed(function: Callable[..., Any], local: Callable[[Any], Any], count: int) -> Callable[..., Any]:
    def routed(*args: Any, **kwargs: Any) -> Any:
        if args:
            args = tuple(local(a) if i < count else a for i, a in enumerate(args))
        for key in ("path", "file", "src", "dst"):
            if key in kwargs:
                kwargs[key] = local(kwargs[key])
        return function(*args, **kwargs)

    routed.__wrapped__ = function  # type: ignore[attr-defined]  # as functools.wraps sets it: install() reads it
    routed.__name__ = getattr(function, "__name__", "routed")
    return routed


def install(root: str, prefixes: Dict[str, str]) -> None:
    """Routes /gcs/ paths in this process; installing twice has no further effect."""
    if getattr(builtins.open, "__wrapped__", None) is not None:
        return
    local = _mapper(os.path.abspath(root), {k: os.path.abspath(v) for k, v in prefixes.items()})
    builtins.open = io.open = _routed(io.open, local, 1)
    for name in _OS_ONE:
        if hasattr(os, name):
            setattr(os, name, _routed(getattr(os, name), local, 1))
    for name in _OS_TWO:
        if hasattr(os, name):
            setattr(os, name, _routed(getattr(os, name), local, 2))


def install_from_environment() -> None:
    """Installs the routing the runner described in the environment, if any."""
    given = os.environ.get(VARIABLE)
    if given:
        config = json.loads(given)
        install(config["root"], config.get("prefixes", {}))


def environment(root: str, prefixes: Dict[str, str]) -> Dict[str, str]:
    """The variable that tells a trial's interpreter where /gcs/ lives here."""
    return {VARIABLE: json.dumps({"root": root, "prefixes": dict(prefixes)})}
