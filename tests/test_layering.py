"""Imports point down only: hydra_plugins -> pipeline_builder -> components.

`pipeline_builder` is usable without Hydra, and `components` runs inside the pipeline's
images, where only it and the standard library (and kfp, for its component) are needed.
The two folders are installed as hydra_vertex_pipelines.pipeline_builder and
hydra_vertex_pipelines.components, and nothing imports them by their folders' names (a
project's own `components` package would be found instead).
"""

import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from conftest import REPO

BUILDER, COMPONENTS = "hydra_vertex_pipelines.pipeline_builder", "hydra_vertex_pipelines.components"
# folder -> modules (and their submodules) its code must never import, at any depth
FORBIDDEN = {
    "pipeline_builder": ("hydra", "hydra_plugins", "omegaconf"),
    "components": ("hydra", "hydra_plugins", "omegaconf", BUILDER),
}
# the folders' own names, which a user's project may hold too
FOLDER_NAMES = ("pipeline_builder", "components")


def names_any_of(name: str, modules: Tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """Every module an import statement in `path` names, with its line (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_never_imports_the_layers_above(package):
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, name in imports(path)
        if names_any_of(name, FORBIDDEN[package])
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", ["hydra_plugins", "pipeline_builder", "components", "tests", "benchmarks", "examples"])
def test_nothing_imports_the_folders_by_their_own_names(folder):
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "test_name_clashes.py"  # its user project imports its own `components`
        for line, name in imports(path)
        if names_any_of(name, FOLDER_NAMES)
    ]
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from hydra.core.utils import JobReturn\n")
    assert [name for _, name in imports(module)] == ["hydra.core.utils"]


def test_the_sweep_file_names_have_one_home():
    """result.json, trial.log and the cloud path prefixes are spelled once, in components/sweep_files.py."""
    spelled = []
    for package in ("hydra_plugins", "pipeline_builder", "components"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name in ("sweep_files.py", "fuse.py"):  # local_fuse is copied whole into trials' sitecustomize
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in ("result.json", "trial.log", "gs://", "/gcs/", "job.pkl"):
                    spelled.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not spelled, "\n".join(spelled)
