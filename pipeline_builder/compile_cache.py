"""Compiled pipelines kept on disk, so that running an unchanged sweep again (local mode's
edit-run-debug loop) imports neither kfp nor gcpc and compiles nothing.

A sweep's pipeline.yaml depends only on its SweepSpec and on the installed kfp, gcpc,
protobuf and PyYAML, this package's own code and the Python version. Two runs of the same
sweep differ only in what names the run and the batch: the run id, and the batch's tag
in its summary's and report's file names (a run again into the same sweep dir writes
summary-2.json), which the compiled file holds as they are. What is kept is the document
and its spec with those names replaced by placeholders, under a key made of the sweep
without them and those versions; a hit puts this run's names back. Any other change to
the sweep is a miss.

A template is kept only once it is shown to be one: the same sweep compiled under a
second run id, which differs from the first in every letter and digit, and another tag,
must give the same template. A compiled file that held a name in any other form (cut,
hashed) would not, and is never kept. That second compile happens only on a miss.

The cache lives in `$XDG_CACHE_HOME/hydra-vertex-pipelines-launcher/compiled-pipelines/`,
one file per sweep, written atomically; `HYDRA_VERTEX_COMPILE_CACHE=0` turns it off.
"""

import hashlib
import json
import string
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines import components
from hydra_vertex_pipelines.components.sweep_files import gcs_to_fuse

from .pipeline import compiled_pipeline
from .spec.sweep import SweepSpec
from .user_cache import cache_path, installed, read_entry, replaced, turned_off, write_entry

SWITCH = "HYDRA_VERTEX_COMPILE_CACHE"  # "0": no cache
_DISTRIBUTIONS = ("kfp", "kfp-pipeline-spec", "google-cloud-pipeline-components", "protobuf", "PyYAML")
_versions: Optional[str] = None

Compiled = Tuple[Dict[str, Any], str]  # the pipeline spec, and the pipeline.yaml text that holds it


def cache_folder() -> Optional[Path]:
    """Where compiled pipelines are kept, or None when the cache is turned off."""
    return None if turned_off(SWITCH) else cache_path("compiled-pipelines")


def compiled_versions() -> str:
    """What a compiled pipeline depends on besides its sweep: the installed packages that
    compile and write it, this package's code (the collector's source is in the file) and
    the Python version."""
    global _versions
    if _versions is None:
        import yaml

        found = installed(_DISTRIBUTIONS)
        code = hashlib.sha256()
        for folder in (Path(__file__).parent, Path(components.__file__).parent):  # pipeline_builder, components
            for path in sorted(folder.rglob("*.py")):
                code.update(str(path.relative_to(folder.parent)).encode() + b"\x00" + path.read_bytes() + b"\x00")
        found["code"] = code.hexdigest()
        found["libyaml"] = str(bool(getattr(yaml, "__with_libyaml__", False)))
        _versions = json.dumps(found, sort_keys=True)
    return _versions


def _names(sweep: SweepSpec) -> List[str]:
    """What names this run and batch in its compiled file: the batch's files in the run
    folder (gs:// and /gcs/ paths, which hold the batch's tag), then the run id."""
    paths = [sweep.files.summary, sweep.files.report, sweep.files.trials]
    return [*paths, *(gcs_to_fuse(p) for p in paths), sweep.run_id]


def _placeholders(sweep: SweepSpec) -> List[Tuple[str, str]]:
    """(name, its placeholder), in `_names`' order: a path before the run id it holds."""
    return [(name, f"\x00name-{i}\x00") for i, name in enumerate(_names(sweep))]


def _template(compiled: Compiled, sweep: SweepSpec) -> Tuple[str, str]:
    """The spec (as JSON, in its order) and the document with the sweep's names replaced
    by placeholders."""
    spec, document = compiled
    pairs = _placeholders(sweep)
    return replaced(json.dumps(spec), pairs), replaced(document, pairs)


def _probe(sweep: SweepSpec) -> SweepSpec:
    """The same sweep under a run id whose every letter and digit differs from its own,
    and another batch tag."""
    table = str.maketrans(
        string.ascii_lowercase + string.ascii_uppercase + string.digits,
        string.ascii_lowercase[1:] + "a" + string.ascii_uppercase[1:] + "A" + string.digits[1:] + "0",
    )
    data = json.loads(json.dumps(sweep.to_dict()).replace(sweep.run_id, sweep.run_id.translate(table)))
    data["tag"] = f"{sweep.tag}-9"
    return SweepSpec.from_dict(data)


class CompileCache:
    """The compiled pipelines of this machine's earlier runs, in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, sweep: SweepSpec) -> Path:
        data = sweep.to_dict()
        data["tag"] = "\x00tag\x00"
        shape = json.dumps(data, sort_keys=True).replace(sweep.run_id, "\x00run-id\x00")
        digest = hashlib.sha256(json.dumps([shape, compiled_versions()]).encode()).hexdigest()
        return self.folder / f"{digest}.json"

    def get(self, sweep: SweepSpec) -> Optional[Compiled]:
        """The sweep's compiled pipeline as this run's names make it, if one is kept."""
        back = [(placeholder, name) for name, placeholder in _placeholders(sweep)]
        try:
            stored = json.loads(read_entry(self._path(sweep)) or "null")
            spec, document = json.loads(replaced(stored["spec"], back)), stored["document"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(spec, dict) or not isinstance(document, str):
            return None
        return spec, replaced(document, back)

    def put(self, sweep: SweepSpec, compiled: Compiled) -> bool:
        """Keeps `compiled` (the sweep's own) as a template, if it is one (see the module's
        docstring); True if it was kept. A cache that cannot be written is only slower."""
        if "\x00" in compiled[1] or any(json.dumps(name) != f'"{name}"' for name in _names(sweep)):
            return False
        template = _template(compiled, sweep)
        probe = _probe(sweep)
        if _template(compiled_pipeline(probe), probe) != template:
            return False
        return write_entry(self.folder, self._path(sweep), json.dumps({"spec": template[0], "document": template[1]}))


def compile_with_cache(sweep: SweepSpec, folder: Optional[Path]) -> Tuple[Dict[str, Any], str, bool]:
    """The sweep's pipeline spec and pipeline.yaml text, and whether they came from the
    cache in `folder` (None: no cache; compiled)."""
    cache = CompileCache(folder) if folder is not None else None
    kept = cache.get(sweep) if cache is not None else None
    if kept is not None:
        return kept[0], kept[1], True
    spec, document = compiled_pipeline(sweep)
    if cache is not None:
        cache.put(sweep, (spec, document))
    return spec, document, False
