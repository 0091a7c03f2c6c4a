"""The fresh environment a package-mode trial runs in here, as it runs in a prebuilt image.

On Vertex a prebuilt container pip-installs the job's `package_uris` (and what they
require) and runs `python -m <python_module>`; nothing else of the project is there
(https://cloud.google.com/vertex-ai/docs/training/create-python-pre-built-container).
Here each set of wheels gets a virtual environment holding only those wheels and the
distributions they declare, resolved against what this machine has installed (no
network) and linked rather than copied. It is made once per content: the wheels' bytes,
the interpreter and the versions it resolved to.
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple

_LAYOUT = "package-env-v1"

# PEP 508's marker variables, as the trial's interpreter sees them, and where it finds
# distributions (its sys.path without the working directory).
_PROBE = r"""
import json, os, platform, sys
impl, v = sys.implementation, sys.implementation.version
level = "" if v.releaselevel == "final" else v.releaselevel[0] + str(v.serial)
print(json.dumps({
    "path": [p for p in sys.path if p and os.path.isdir(p)],
    "version": ".".join(platform.python_version_tuple()[:2]),
    "executable": os.path.realpath(sys.executable),
    "markers": {
        "implementation_name": impl.name,
        "implementation_version": f"{v.major}.{v.minor}.{v.micro}{level}",
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"""


class PackageEnvError(RuntimeError):
    """The trial's packages need something this machine cannot provide."""


@dataclass(frozen=True)
class TrialEnvironment:
    """A made environment: its interpreter and the folder of its scripts."""

    root: Path
    python: str
    bin_dir: str


_lock = threading.Lock()
_made: Dict[Tuple[str, Tuple[str, ...]], TrialEnvironment] = {}
_probes: Dict[str, Dict[str, Any]] = {}


def environment(python: str, wheels: Sequence[Path]) -> TrialEnvironment:
    """The environment for `wheels` on `python`, made on first use (once per content on
    this machine, once per process for the lookup)."""
    wanted = (python, tuple(str(w) for w in wheels))
    with _lock:  # tasks that need the same environment wait for one to make it
        if wanted not in _made or not _made[wanted].root.is_dir():
            _made[wanted] = _make(python, [Path(w) for w in wheels])
        return _made[wanted]


def cache_root() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root, "hydra-vertex-pipelines-launcher", "envs")


def _probe(python: str) -> Dict[str, Any]:
    if python not in _probes:
        out = subprocess.run([python, "-c", _PROBE], cwd="/", stdout=subprocess.PIPE, text=True, check=True).stdout
        _probes[python] = json.loads(out)
    return _probes[python]


def _wheel_metadata(wheel: Path) -> Tuple[str, str, List[str]]:
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        message = Parser().parsestr(archive.read(name).decode("utf-8"))
    return str(message["Name"]), str(message["Version"]), list(message.get_all("Requires-Dist") or [])


def _wanted(requires: Sequence[str], extras: Set[str], markers: Mapping[str, str]) -> List[Any]:
    from packaging.requirements import Requirement

    wanted = []
    for text in requires:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({**markers, "extra": e}) for e in sorted(extras) or [""]):
            wanted.append(req)
    return wanted


def resolve(wheels: Sequence[Path], probe: Mapping[str, Any]) -> List[importlib.metadata.Distribution]:
    """The installed distributions the wheels require, transitively, each checked against
    every specifier that asks for it. A requirement the wheels themselves meet is theirs."""
    from packaging.utils import canonicalize_name

    provided: Dict[str, Tuple[str, List[str]]] = {}  # name -> (version, requires)
    queue: List[Tuple[str, Sequence[str], Set[str]]] = []
    for wheel in wheels:
        name, version, requires = _wheel_metadata(wheel)
        provided[canonicalize_name(name)] = (version, requires)
        queue.append((wheel.name, requires, set()))
    chosen: Dict[str, importlib.metadata.Distribution] = {}
    extras_seen: Dict[str, Set[str]] = {key: set() for key in provided}
    while queue:
        who, needs, extras = queue.pop(0)
        for req in _wanted(needs, extras, probe["markers"]):
            key = canonicalize_name(req.name)
            if key not in provided and key not in chosen:
                found = next(iter(importlib.metadata.distributions(name=req.name, path=list(probe["path"]))), None)
                if found is None:
                    raise PackageEnvError(
                        f"{req.name} (required by {who}) is not installed for {probe['executable']}: a package trial's "
                        f"environment is made from what is installed here, as pip would install it on Vertex; pip install '{req}'"
                    )
                chosen[key] = found
            version, dependencies = provided[key] if key in provided else (chosen[key].version, chosen[key].requires or [])
            if not req.specifier.contains(version, prereleases=True):
                raise PackageEnvError(
                    f"{req.name} {version} is installed here, but {who} requires {req}; install a version that matches"
                )
            have = extras_seen.get(key)
            if have is None or not set(req.extras) <= have:
                extras_seen[key] = (have or set()) | set(req.extras)
                queue.append((f"{req.name} {version}", dependencies, extras_seen[key]))
    return [chosen[k] for k in sorted(chosen)]


def _key(python: str, wheels: Sequence[Path], dists: Sequence[importlib.metadata.Distribution]) -> str:
    digest = hashlib.sha256(_LAYOUT.encode())
    digest.update(os.path.realpath(python).encode())
    for wheel in wheels:
        digest.update(hashlib.sha256(Path(wheel).read_bytes()).digest())
    for dist in dists:
        digest.update(f"{dist.metadata['Name']}=={dist.version}@{getattr(dist, '_path', '')}".encode())
    return digest.hexdigest()[:32]


def _make(python: str, wheels: Sequence[Path]) -> TrialEnvironment:
    probe = _probe(python)
    dists = resolve(wheels, probe)
    root = cache_root() / _key(python, wheels, dists)
    env = TrialEnvironment(root, str(root / "bin" / "python"), str(root / "bin"))
    if root.is_dir():
        return env
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root.parent))
    try:
        subprocess.run([python, "-m", "venv", "--without-pip", "--clear", str(partial)], check=True, stdout=subprocess.DEVNULL)
        site = partial / "lib" / f"python{probe['version']}" / "site-packages"
        for wheel in wheels:
            _install_wheel(wheel, site, partial / "bin", env.python)
        for dist in dists:
            _link(dist, site)
        _scripts(site, partial / "bin", env.python)
        try:
            os.replace(partial, root)
        except OSError:  # made meanwhile by another run
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return env


def _install_wheel(wheel: Path, site: Path, bin_dir: Path, python: str) -> None:
    """The wheel's files where pip puts them: purelib/platlib in site-packages, scripts in
    bin (a `#!python` first line naming the environment's interpreter, as pip writes it)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = member.filename.split("/")
            if member.is_dir() or ".." in parts or member.filename.startswith("/"):
                continue  # folders come with their files; nothing lands outside the environment
            data = archive.read(member)
            if parts[0].endswith(".data") and len(parts) > 2:
                if parts[1] in ("purelib", "platlib"):
                    target = site.joinpath(*parts[2:])
                elif parts[1] == "scripts":
                    target = bin_dir.joinpath(*parts[2:])
                    if data.startswith(b"#!python"):
                        data = b"#!" + python.encode() + data[len(b"#!python") :]
                else:
                    continue  # headers and data files: nothing a trial imports
            else:
                target = site.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if target.parent == bin_dir:
                target.chmod(0o755)


def _link(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Each installed file of `dist` linked at the same place in `site`, so packages that
    share a namespace (google.*) merge as they do when pip installs them side by side."""
    files = dist.files
    if files is None:
        name = dist.metadata["Name"]
        raise PackageEnvError(f"{name} {dist.version} was installed without a file list (RECORD): reinstall it with pip")
    for path in files:
        relative = str(path)
        if relative.startswith("..") or os.path.isabs(relative):
            continue  # scripts outside site-packages: remade for this interpreter by _scripts
        source = Path(str(dist.locate_file(path)))
        if not source.exists():
            continue
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(source, target)


def _scripts(site: Path, bin_dir: Path, python: str) -> None:
    """The console scripts of every distribution in `site`, started with the environment's
    interpreter (pip writes them at install time; the linked ones name another one)."""
    for dist in importlib.metadata.distributions(path=[str(site)]):
        for point in dist.entry_points.select(group="console_scripts"):
            module, _, attr = point.value.partition(":")
            call = f"{module}.{attr.split('[')[0].strip()}" if attr else module
            script = bin_dir / point.name
            script.write_text(f"#!{python}\nimport sys\nimport {module.strip()}\nsys.exit({call.strip()}())\n", encoding="utf-8")
            script.chmod(0o755)
