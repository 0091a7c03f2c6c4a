"""Imports point down only: hydra_plugins -> pipeline_builder -> components, and no cycle.

`pipeline_builder` is usable without Hydra, and `components` runs inside the pipeline's
images, where only it and the standard library (and kfp, for its component) are needed.
The two folders are installed as hydra_vertex_pipelines.pipeline_builder and
hydra_vertex_pipelines.components, and nothing imports them by their folders' names (a
project's own `components` package would be found instead).

Inside pipeline_builder, one subpackage per job, each importing only subpackages below it
(MAY_IMPORT): spec only errors; cloud spec; wheels spec and cloud; local spec and wheels;
emulator local, cloud and spec; `pipeline` (the KFP compile, and `compile_cache` beside it)
spec; recovery spec, cloud and `pipeline`; live spec and cloud; `user_cache` (the machine's
cache folder, for wheels, check verdicts and compiled pipelines) components; the command line
sits on top and nothing imports it. The import graph is read from the source: every import
statement counts, lazy ones and those under `if TYPE_CHECKING` too, since a cycle hidden
from the interpreter is still a cycle for the reader.
"""

import ast
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import pytest

from conftest import REPO

BUILDER, COMPONENTS = "hydra_vertex_pipelines.pipeline_builder", "hydra_vertex_pipelines.components"
LAUNCHER = "hydra_plugins.vertex_pipelines_launcher"
# folder -> modules (and their submodules) its code must never import, at any depth
FORBIDDEN = {
    "pipeline_builder": ("hydra", "hydra_plugins", "omegaconf"),
    "components": ("hydra", "hydra_plugins", "omegaconf", BUILDER),
}
# the folders' own names, which a user's project may hold too
FOLDER_NAMES = ("pipeline_builder", "components")
# folder -> the package it is installed as
ROOTS = {"hydra_plugins/vertex_pipelines_launcher": LAUNCHER, "pipeline_builder": BUILDER, "components": COMPONENTS}

# module prefix -> layer; the longest prefix that names a module wins
LAYER_OF = {
    LAUNCHER: "hydra_plugins",
    BUILDER: "pipeline_builder",  # the package's __init__
    f"{BUILDER}.__main__": "cli",
    f"{BUILDER}.cli": "cli",
    f"{BUILDER}.errors": "errors",
    f"{BUILDER}.command_name": "command_name",
    f"{BUILDER}.lazy_exports": "lazy_exports",
    f"{BUILDER}.spec": "spec",
    f"{BUILDER}.cloud": "cloud",
    f"{BUILDER}.wheels": "wheels",
    f"{BUILDER}.local": "local",
    f"{BUILDER}.emulator": "emulator",
    f"{BUILDER}.pipeline": "pipeline",
    f"{BUILDER}.compile_cache": "pipeline",
    f"{BUILDER}.user_cache": "user_cache",
    f"{BUILDER}.recovery": "recovery",
    f"{BUILDER}.live": "live",
    COMPONENTS: "components",
}
_BELOW_THE_CLI = {
    "pipeline_builder",
    "errors",
    "command_name",
    "lazy_exports",
    "user_cache",
    "spec",
    "cloud",
    "wheels",
    "local",
    "emulator",
    "pipeline",
    "recovery",
    "live",
    "components",
}
# layer -> the other layers it may import; nothing imports the command line
MAY_IMPORT: Dict[str, Set[str]] = {
    "components": set(),
    "errors": set(),
    "command_name": set(),
    "lazy_exports": set(),
    "user_cache": {"components"},
    "spec": {"errors", "components"},
    "cloud": {"spec", "errors", "components"},
    "wheels": {"spec", "cloud", "errors", "user_cache", "components"},
    "local": {"spec", "wheels", "errors", "lazy_exports", "user_cache", "components"},
    "emulator": {"local", "cloud", "spec", "errors", "lazy_exports", "components"},
    "pipeline": {"spec", "errors", "user_cache", "components"},
    "recovery": {"spec", "cloud", "pipeline", "errors", "components"},
    "live": {"spec", "cloud", "errors", "components"},
    "pipeline_builder": _BELOW_THE_CLI - {"pipeline_builder"},
    "cli": _BELOW_THE_CLI,
    "hydra_plugins": _BELOW_THE_CLI,
}


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


# ---- the project's import graph ---------------------------------------------------------


class Edge(NamedTuple):
    source: str
    target: str
    where: str  # file:line of the import statement


class Graph(NamedTuple):
    modules: Dict[str, Path]
    edges: List[Edge]
    unresolved: List[str]  # imports of the project's packages that name no module of it


def project_modules(base: Path, roots: Dict[str, str]) -> Dict[str, Path]:
    """Every module under the roots by its installed name; a package by its __init__.py."""
    modules = {}
    for folder, package in roots.items():
        for path in sorted((base / folder).rglob("*.py")):
            parts = path.relative_to(base / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _named(node: ast.AST, importer: str, is_package: bool, modules: Dict[str, Path]) -> Iterator[str]:
    """The modules one import statement names: `from pkg import mod` names pkg.mod when it
    is a submodule, pkg otherwise."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, importer, is_package)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in modules else base


def _runs(target: str, importer: str) -> Iterator[str]:
    """What importing `target` runs: the target and each package above it, except the
    importer's own packages (the interpreter imported those before the importer)."""
    parts = target.split(".")
    for n in range(1, len(parts) + 1):
        name = ".".join(parts[:n])
        if name == target or not importer.startswith(name + "."):
            yield name


def import_graph(base: Path = REPO, roots: Optional[Dict[str, str]] = None) -> Graph:
    roots = roots or ROOTS
    modules = project_modules(base, roots)
    edges, unresolved = [], []
    for importer, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _named(node, importer, path.name == "__init__.py", modules):
                where = f"{path.relative_to(base)}:{node.lineno}"
                if names_any_of(target, tuple(roots.values())) and target not in modules:
                    unresolved.append(f"{where} imports {target}, which is no module of the project")
                for name in _runs(target, importer):
                    if name in modules and name != importer:
                        edges.append(Edge(importer, name, where))
    return Graph(modules, edges, unresolved)


def layer(module: str) -> Optional[str]:
    prefixes = [p for p in LAYER_OF if names_any_of(module, (p,))]
    return LAYER_OF[max(prefixes, key=len)] if prefixes else None


def upward_imports(graph: Graph) -> List[str]:
    """Each import of a layer that the importer's layer may not import."""
    bad = []
    for edge in graph.edges:
        source, target = layer(edge.source), layer(edge.target)
        if source is None or target is None:
            bad.append(f"{edge.where}: {_short(edge.source)} -> {_short(edge.target)}: a module in no layer")
        elif source != target and target not in MAY_IMPORT[source]:
            bad.append(f"{edge.where}: {_short(edge.source)} ({source}) imports {_short(edge.target)} ({target})")
    return bad


def _components(nodes: List[str], after: Dict[str, List[str]]) -> List[List[str]]:
    """Tarjan's strongly connected components of the graph."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in after.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def _shortest_cycle(start: str, after: Dict[str, List[str]], within: Set[str]) -> List[str]:
    previous: Dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in after.get(node, []):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if nxt in within and nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return []


def cycles(graph: Graph) -> List[List[str]]:
    """For each group of modules that import each other, the shortest cycle through each
    of its modules, as a chain that ends where it starts."""
    after: Dict[str, List[str]] = {}
    for edge in graph.edges:
        if edge.target not in after.setdefault(edge.source, []):
            after[edge.source].append(edge.target)
    found: List[List[str]] = []
    for component in _components(sorted(graph.modules), after):
        if len(component) < 2:
            continue
        for start in component:
            chain = _shortest_cycle(start, after, set(component))
            loop = chain[:-1]
            first = loop.index(min(loop))
            rotated = loop[first:] + loop[:first]
            if rotated + [rotated[0]] not in found:
                found.append(rotated + [rotated[0]])
    return found


def _short(module: str) -> str:
    return module.replace("hydra_vertex_pipelines.", "").replace("hydra_plugins.", "")


def describe(chain: List[str], graph: Graph) -> str:
    where = {}
    for edge in graph.edges:
        where.setdefault((edge.source, edge.target), edge.where)
    lines = [" -> ".join(_short(m) for m in chain)]
    lines += [f"    {where[a, b]} imports {_short(b)}" for a, b in zip(chain, chain[1:], strict=False)]
    return "\n".join(lines)


# ---- the rules, on the project ----------------------------------------------------------


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


def test_every_import_of_the_project_names_one_of_its_modules():
    graph = import_graph()
    assert not graph.unresolved, "\n".join(graph.unresolved)


def test_every_module_is_in_a_layer():
    assert not [m for m in import_graph().modules if layer(m) is None]


def test_imports_point_down_the_layers():
    bad = upward_imports(import_graph())
    assert not bad, "\n".join(bad)


def test_there_is_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(chain, graph) for chain in found)


SWEEP_FILE_NAMES = ("result.json", "trial.log", "job.pkl", ".vertex", "gs://", "/gcs/")


def test_the_sweep_file_names_have_one_home():
    """result.json, trial.log, job.pkl, the launcher's .vertex folder and the cloud path prefixes
    are spelled once, in components/sweep_files.py."""
    spelled = []
    for package in ("hydra_plugins", "pipeline_builder", "components"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name in ("sweep_files.py", "fuse.py"):  # local_fuse is copied whole into trials' sitecustomize
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in SWEEP_FILE_NAMES:
                    spelled.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not spelled, "\n".join(spelled)


# ---- the checks themselves, on planted trees --------------------------------------------


def plant(root: Path, files: Dict[str, str]) -> Graph:
    """A tree of the project's three folders holding `files` (path -> source), and its graph."""
    for folder in ROOTS:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "__init__.py").touch()
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name != "__init__.py" and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").touch()
        path.write_text(source)
    return import_graph(root)


def test_a_planted_cycle_behind_type_checking_fails(tmp_path):
    graph = plant(
        tmp_path,
        {
            "pipeline_builder/local/runner.py": "from . import tasks\n",
            "pipeline_builder/local/tasks.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runner import LocalRunner\n"
            ),
        },
    )
    assert [[_short(m) for m in chain] for chain in cycles(graph)] == [
        ["pipeline_builder.local.runner", "pipeline_builder.local.tasks", "pipeline_builder.local.runner"]
    ]
    assert describe(cycles(graph)[0], graph).splitlines()[1:] == [
        "    pipeline_builder/local/runner.py:1 imports pipeline_builder.local.tasks",
        "    pipeline_builder/local/tasks.py:3 imports pipeline_builder.local.runner",
    ]


def test_a_planted_cycle_through_a_package_init_and_a_lazy_import_fails(tmp_path):
    """Importing emulator.guard runs emulator/__init__.py, which imports the server."""
    graph = plant(
        tmp_path,
        {
            "pipeline_builder/emulator/__init__.py": "from .server import VertexEmulator\n",
            "pipeline_builder/emulator/server.py": f"from {BUILDER}.local.runner import LocalRunner\n",
            "pipeline_builder/emulator/guard.py": "",
            "pipeline_builder/local/runner.py": "def run():\n    from ..emulator.guard import checked\n",
        },
    )
    assert [[_short(m) for m in chain] for chain in cycles(graph)] == [
        [
            "pipeline_builder.emulator",
            "pipeline_builder.emulator.server",
            "pipeline_builder.local.runner",
            "pipeline_builder.emulator",
        ]
    ]


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path):
    graph = plant(
        tmp_path,
        {
            "pipeline_builder/local/__init__.py": "from .runner import LocalRunner\n",
            "pipeline_builder/local/runner.py": "from . import fuse\nfrom .plan import TaskRun\nfrom ..spec import names\n",
            "pipeline_builder/local/fuse.py": "",
            "pipeline_builder/local/plan.py": "",
            "pipeline_builder/spec/names.py": "from ..errors import ConfigError\n",
            "pipeline_builder/errors.py": "",
        },
    )
    assert cycles(graph) == [] and upward_imports(graph) == [] and graph.unresolved == []
    short = sorted((_short(e.source), _short(e.target)) for e in graph.edges)
    assert short == [
        ("pipeline_builder.local", "pipeline_builder.local.runner"),
        ("pipeline_builder.local.runner", "pipeline_builder.local.fuse"),
        ("pipeline_builder.local.runner", "pipeline_builder.local.plan"),
        ("pipeline_builder.local.runner", "pipeline_builder.spec"),  # its __init__ runs first
        ("pipeline_builder.local.runner", "pipeline_builder.spec.names"),
        ("pipeline_builder.spec.names", "pipeline_builder.errors"),
    ]


@pytest.mark.parametrize(
    "name, source, expected",
    [
        (
            "pipeline_builder/spec/manifest.py",
            "from ..pipeline import SweepSpec\n",
            "spec.manifest (spec) imports pipeline_builder.pipeline (pipeline)",
        ),
        (
            "pipeline_builder/local/tasks.py",
            "def f():\n    from ..emulator import server\n",
            "local.tasks (local) imports pipeline_builder.emulator",
        ),
        (
            "pipeline_builder/cloud/gcs.py",
            "import hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel\n",
            "cloud.gcs (cloud) imports",
        ),
        (
            "pipeline_builder/emulator/serve.py",
            "from .. import __main__\n",
            "emulator.serve (emulator) imports pipeline_builder.__main__ (cli)",
        ),
        (
            "components/collector.py",
            "from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError\n",
            "(components) imports",
        ),
        (
            "pipeline_builder/errors.py",
            "from hydra_plugins.vertex_pipelines_launcher import config\n",
            "(errors) imports vertex_pipelines_launcher",
        ),
    ],
)
def test_a_planted_upward_import_fails(tmp_path, name, source, expected):
    other = {
        "pipeline_builder/pipeline.py": "",
        "pipeline_builder/__main__.py": "",
        "pipeline_builder/errors.py": "",
        "pipeline_builder/emulator/server.py": "",
        "pipeline_builder/wheels/project_wheel.py": "",
        "hydra_plugins/vertex_pipelines_launcher/config.py": "",
    }
    graph = plant(tmp_path, {**other, name: source})
    bad = upward_imports(graph)
    assert bad and all(expected in line for line in bad), bad


def test_the_launcher_may_import_anything_below_the_command_line(tmp_path):
    graph = plant(
        tmp_path,
        {
            "hydra_plugins/vertex_pipelines_launcher/_core.py": (
                "from hydra_vertex_pipelines.pipeline_builder.emulator import server\n"
                "from hydra_vertex_pipelines.components import collector\n"
            ),
            "pipeline_builder/emulator/server.py": "",
            "components/collector.py": "",
        },
    )
    assert upward_imports(graph) == [] and cycles(graph) == []


def test_an_import_of_no_module_of_the_project_is_reported(tmp_path):
    graph = plant(tmp_path, {"pipeline_builder/local/runner.py": "from ..local_tasks import run_task\n"})
    where = "pipeline_builder/local/runner.py:1"
    assert graph.unresolved == [f"{where} imports {BUILDER}.local_tasks, which is no module of the project"]


def test_every_package_folder_is_installed():
    """A non-editable install (the trial image, a user's `pip install`) holds only the
    packages pyproject.toml lists: a new folder left out imports in the tests' editable
    install and fails everywhere else."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *rel)))
    assert found - listed == set(), "folders missing from [tool.setuptools] packages"
