"""The wheel of this launcher, made from the code this machine runs.

Every package-mode trial runs this launcher's trial entry, and a prebuilt image installs
only the wheels a job lists and what they require. Shipping this wheel beside the
project's own means a trial runs the launcher version that compiled it, whether or not
that version is on PyPI. It is made from the installed modules and the installed metadata
(the files `pip wheel` would put in it: the packages' .py files and the dist-info), so an
editable install ships its working tree as it is now.

Its metadata declares only what a trial imports (TRIAL_REQUIRES, with the installed
version ranges): kfp, gcpc and google-cloud-aiplatform serve the machine that compiles and
submits. Each trial's image then pip-installs three small distributions rather than
dozens, and a trial that imported more would fail in local mode's package environment,
which holds what this metadata declares, as it would on Vertex.
"""

import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from .project_wheel import DISTRIBUTION, PackageUpload, package_folder

# The import packages of this distribution (hydra_plugins itself is a namespace package).
PACKAGES = (
    "hydra_plugins.vertex_pipelines_launcher",
    "hydra_vertex_pipelines.pipeline_builder",
    "hydra_vertex_pipelines.components",
)
_DIST_INFO_FILES = ("entry_points.txt", "top_level.txt")
# The trial entry runs Hydra (OmegaConf with it); a pickled job needs cloudpickle.
TRIAL_REQUIRES = ("hydra-core", "omegaconf", "cloudpickle")
_WHEEL_FILE = "Wheel-Version: 1.0\nGenerator: hydra-vertex-pipelines-launcher\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same code gives the same bytes


def _module_files() -> List[Tuple[str, Path]]:
    files: List[Tuple[str, Path]] = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{name} is not importable here: reinstall {DISTRIBUTION}")
        folder = Path(list(spec.submodule_search_locations)[0])
        prefix = name.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                files.append((f"{prefix}/{path.relative_to(folder).as_posix()}", path))
    return sorted(files)


def _installed() -> importlib.metadata.Distribution:
    """The installed distribution (its dist-info), not a stale `*.egg-info` of a source
    tree that happens to be the working directory."""
    for dist in importlib.metadata.distributions(name=DISTRIBUTION):
        if dist.read_text("METADATA") is not None:
            return dist
    raise RuntimeError(f"{DISTRIBUTION} has no installed metadata: install it with pip")


def trial_metadata(metadata: str) -> str:
    """The installed METADATA with its unconditional requirements cut to TRIAL_REQUIRES."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    head, sep, body = metadata.partition("\n\n")
    kept = []
    for line in head.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None and canonicalize_name(req.name) not in TRIAL_REQUIRES:
                continue
        kept.append(line)
    return "\n".join(kept) + sep + body


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel_bytes() -> Tuple[str, bytes]:
    """(file name, content) of the wheel; the same installed code always gives the same bytes."""
    dist = _installed()
    stem = f"{DISTRIBUTION.replace('-', '_')}-{dist.version}"
    info = f"{stem}.dist-info"
    entries: Dict[str, bytes] = {name: path.read_bytes() for name, path in _module_files()}
    entries[f"{info}/METADATA"] = trial_metadata(dist.read_text("METADATA") or "").encode("utf-8")
    for name in _DIST_INFO_FILES:
        text = dist.read_text(name)
        if text is not None:
            entries[f"{info}/{name}"] = text.encode("utf-8")
    entries[f"{info}/WHEEL"] = _WHEEL_FILE.encode()
    record = "\n".join([*(_record_line(n, d) for n, d in entries.items()), f"{info}/RECORD,,"]) + "\n"
    entries[f"{info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():  # dist-info last, as wheels have it
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return f"{stem}-py3-none-any.whl", buffer.getvalue()


def write_beside(pipeline_dir: Path, pipeline_root: str) -> PackageUpload:
    """The launcher's wheel under `pipeline_dir/packages/<digest>/`, laid out as the
    project's wheel is, and the URI it is uploaded to."""
    name, data = wheel_bytes()
    digest = hashlib.sha256(data).hexdigest()
    local = SweepFiles(Path(pipeline_dir)).packages(digest) / name
    if not local.is_file():
        write_atomic(local, data)
    return PackageUpload(uri=f"{package_folder(pipeline_root, digest)}/{name}", digest=digest, local_path=local)
