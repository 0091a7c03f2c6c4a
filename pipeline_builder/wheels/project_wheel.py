"""Ships the user's code as a wheel, so trials can run on a prebuilt training image.

The wheel is stored under `<pipeline_root>/packages/<digest>/`, where the digest covers
the source files. Unchanged code therefore maps to an object the bucket already holds, and
to a wheel this machine has built already: nothing is built and nothing is uploaded.
"""

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Tuple

from hydra_vertex_pipelines.components.atomic_write import copy_atomic
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..cloud import gcs
from ..errors import ConfigError
from ..user_cache import cache_path

SOURCE_DIR_FIELD = "hydra.launcher.trial.package.source_dir"
ACCEPTED_SOURCE = "a folder with a pyproject.toml or setup.py that pip can build into a wheel"

# Directories that hold build output, run output or environments rather than source.
# They are skipped only when they are not themselves a Python package (no __init__.py),
# so a package that happens to be called e.g. `outputs` still ships.
_OUTPUT_DIRS = frozenset({"build", "dist", "multirun", "outputs"})
_ENV_DIRS = frozenset({"venv", "__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

# 1980-01-01: the earliest time a zip entry can hold; any fixed value makes timestamps reproducible.
_SOURCE_DATE_EPOCH = "315532800"
_DIGEST_VERSION = b"pipeline-builder-source-digest-v1\0"
_HINT_LINES = 15


@dataclass(frozen=True)
class PackageUpload:
    """A built wheel: where trials find it once uploaded, and where it is on this machine."""

    uri: str
    digest: str
    local_path: Path


def _is_skipped_dir(entry: os.DirEntry) -> bool:
    name = entry.name
    if name.startswith(".") or name in _ENV_DIRS or name.endswith(".egg-info") or entry.is_symlink():
        return True
    path = entry.path
    if os.path.exists(os.path.join(path, "pyvenv.cfg")):  # a virtualenv under any name
        return True
    return name in _OUTPUT_DIRS and not os.path.exists(os.path.join(path, "__init__.py"))


def _source_files(source_dir: Path) -> List[Tuple[str, str]]:
    """(relative POSIX path, absolute path) of every source file, sorted by relative path.

    Both the digest and the build copy use this list, so the wheel is built from exactly
    the files the digest covers.
    """
    found: List[Tuple[str, str]] = []

    def walk(directory: str, prefix: str) -> None:
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:  # an unreadable folder (e.g. a root-owned volume) is not source
            return
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):  # False for a symlinked folder, which is skipped
                if not _is_skipped_dir(entry):
                    walk(entry.path, f"{prefix}{name}/")
            elif not name.startswith(".") and not name.endswith(_SKIPPED_SUFFIXES) and entry.is_file():
                # is_file() follows symlinks: a linked file counts, a dangling link does not.
                found.append((prefix + name, entry.path))

    walk(str(source_dir), "")
    found.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return found


def source_digest(source_dir: Path) -> str:
    """sha256 over the sorted relative paths and bytes of the source files.

    Each path and each content is length-prefixed, so moving bytes between files or
    renaming a file changes the digest. Only names and bytes count (no mtimes, modes or
    absolute paths), so the same tree gives the same digest on any machine.
    """
    digest = hashlib.sha256(_DIGEST_VERSION)
    for relative, absolute in _source_files(Path(source_dir)):
        name = relative.encode("utf-8", "surrogateescape")
        digest.update(struct.pack(">Q", len(name)))
        digest.update(name)
        with open(absolute, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(struct.pack(">Q", size))
            read = 0
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                read += len(chunk)
        if read != size:
            raise RuntimeError(f"{absolute} changed while it was being read; try again once it is written")
    return digest.hexdigest()


def _copy_sources(source_dir: Path, target: Path) -> None:
    for relative, absolute in _source_files(source_dir):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(absolute, destination)


def build_wheel(source_dir: Path, out_dir: Path, field: str = SOURCE_DIR_FIELD) -> Path:
    """Builds one wheel of `source_dir` into `out_dir` and returns its path.

    The build runs on a temporary copy of the source files, so setuptools' `build/` and
    `*.egg-info` never appear in the user's tree, first without network or build isolation
    (with the build backend already installed), else in pip's isolated build environment. SOURCE_DATE_EPOCH is fixed so the
    wheel is as reproducible as the backend allows.
    """
    source_dir = Path(source_dir)
    if not ((source_dir / "pyproject.toml").is_file() or (source_dir / "setup.py").is_file()):
        missing = "there is no such folder" if not source_dir.is_dir() else "it has neither pyproject.toml nor setup.py"
        raise ConfigError(field, str(source_dir), ACCEPTED_SOURCE, hint=missing)
    with tempfile.TemporaryDirectory(prefix="pipeline-builder-wheel-") as tmp:
        copy = Path(tmp, "src")
        wheels = Path(tmp, "wheels")
        _copy_sources(source_dir, copy)
        env = {
            **os.environ,
            "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        offline = [
            sys.executable, "-m", "pip", "wheel",
            "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
            "--wheel-dir", str(wheels), str(copy),
        ]  # fmt: skip
        proc = subprocess.run(offline, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            # The project's build backend may not be installed here (hatchling, or setuptools
            # on Python 3.12+): let pip fetch it into an isolated build environment.
            isolated = [a for a in offline if a not in ("--no-build-isolation", "--no-index")]
            proc = subprocess.run(isolated, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        built = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
        if proc.returncode != 0 or len(built) != 1:
            output = proc.stdout.replace(str(copy), str(source_dir))  # name the user's folder, not the copy
            tail = "\n".join(output.rstrip().splitlines()[-_HINT_LINES:])
            problem = f"pip wheel exited with {proc.returncode}" if proc.returncode else f"pip wheel made {len(built)} wheels"
            raise ConfigError(field, str(source_dir), ACCEPTED_SOURCE, hint=f"{problem}; its last lines:\n{tail}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / built[0].name
        shutil.move(str(built[0]), str(target))
        return target


def package_folder(pipeline_root: str, digest: str) -> str:
    """The folder that holds the wheel built from sources with this digest."""
    return SweepFiles(pipeline_root.rstrip("/")).packages(digest)


def write_beside(pipeline_dir: Path, source_dir: Path, pipeline_root: str) -> PackageUpload:
    """The wheel under `pipeline_dir/packages/<digest>/`, and the URI it is uploaded to
    (`upload_if_absent` in submit mode; compile mode leaves that to `upload_command`).

    The folder layout matches the bucket's, so copying `pipeline_dir/packages` to
    `<pipeline_root>/packages` (see `upload_command`) puts every wheel where trials look.
    """
    digest = source_digest(Path(source_dir))
    local_folder = SweepFiles(Path(pipeline_dir)).packages(digest)
    existing = sorted(local_folder.glob("*.whl")) if local_folder.is_dir() else []
    if existing:
        wheel = existing[0]
    else:
        cached = _cache_folder(digest)
        built = sorted(cached.glob("*.whl")) if cached.is_dir() else []
        if not built:  # built once per content on this machine, not once per sweep
            built = [build_wheel(Path(source_dir), cached)]
        wheel = local_folder / built[0].name
        copy_atomic(built[0], wheel)  # a wheel found here is later taken as whole
    uri = f"{package_folder(pipeline_root, digest)}/{wheel.name}"
    return PackageUpload(uri=uri, digest=digest, local_path=wheel)


def _cache_folder(digest: str) -> Path:
    """Where this machine keeps the wheel built from sources with this digest."""
    return cache_path("packages", digest)


def is_pure(wheel_name: str) -> bool:
    """Whether a wheel installs on any platform (Vertex's prebuilt images are Linux x86_64)."""
    return wheel_name.endswith("-none-any.whl")


def upload_command(package: PackageUpload) -> str:
    """A shell command that uploads a compile-mode wheel without replacing one already there."""
    return f"gcloud storage cp --no-clobber {package.local_path} {package.uri}"


def upload_if_absent(storage_client: Any, package: PackageUpload) -> bool:
    """Uploads a built wheel unless its object exists (one metadata read); True if it did.

    The object name holds the source digest, so an existing object is this very code.
    """
    return gcs.upload_if_absent(storage_client, package.uri, str(package.local_path))


DISTRIBUTION = "hydra-vertex-pipelines-launcher"


def _normalised(name: str) -> str:
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def wheel_contents(wheel: Path) -> Tuple[List[str], List[str]]:
    """The files a wheel installs and what it requires (Requires-Dist lines, extras'
    requirements left out): what a prebuilt image gets from it."""
    import zipfile
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(metadata).decode("utf-8"))
    requires = [line for line in message.get_all("Requires-Dist") or [] if "extra ==" not in line]
    return [n for n in names if ".dist-info/" not in n], requires


def check_wheel(wheel: Path, config_files: List[str], field: str = SOURCE_DIR_FIELD) -> None:
    """A wheel the prebuilt image can run trials from: it requires this launcher (and so
    Hydra), which every trial's command runs, in a version the launcher's own wheel
    shipped beside it meets, and holds the app's config files, since the image has no
    source tree to find them in."""
    import importlib.metadata

    from packaging.requirements import Requirement

    files, requires = wheel_contents(wheel)
    wanted = [r for r in map(Requirement, requires) if _normalised(r.name) == DISTRIBUTION]
    if not wanted:
        raise ConfigError(
            field,
            str(wheel.name),
            f"a project whose dependencies include {DISTRIBUTION} (it brings Hydra): the prebuilt "
            "image installs only the wheel and what it requires, and every trial runs this launcher's trial entry",
            f'add "{DISTRIBUTION}" to [project] dependencies in its pyproject.toml',
        )
    version = importlib.metadata.version(DISTRIBUTION)
    if not wanted[0].specifier.contains(version, prereleases=True):
        raise ConfigError(
            field,
            str(wheel.name),
            f"a project whose requirement on {DISTRIBUTION} the installed version ({version}) meets: "
            "that version's wheel is shipped beside the project's, and pip on the prebuilt image would refuse the pair",
            f"the project requires {wanted[0]}",
        )
    missing = [f for f in config_files if f not in set(files)]
    if missing:
        raise ConfigError(
            field,
            str(wheel.name),
            "a wheel that holds the app's config files: on the prebuilt image there is no source tree to read them from",
            f"{', '.join(missing[:5])} {'is' if len(missing) == 1 else 'are'} not in the wheel: make them package data "
            "(a conf/ folder inside the package, with [tool.setuptools.package-data] or include_package_data)",
        )
