"""The quickstart's trial image (examples/quickstart/Dockerfile), rehearsed without Docker.

The Dockerfile is read instruction by instruction and each one is carried out here:

- FROM: a fresh virtual environment (`python -m venv`, no system site-packages, of the
  FROM's Python version when this machine has it) stands for the base image's
  interpreter; its `bin/` comes first on PATH, so `python`, `python3` and `pip` name it,
  as /usr/local/bin names python:3.11-slim's. `sh` and `mktemp` are this machine's, as
  the Debian base has them.
- COPY: files come from the build context (the repository root) as `.dockerignore`
  filters it, into a folder standing for the image's filesystem; WORKDIR moves in it.
- RUN: the `pip install` steps run for real in that environment, in their WORKDIR: a full
  install of the launcher and its dependencies from the package index, as a Docker build
  does (so the package index must be reachable). Each step's command runs with pip's
  settings of this machine (index, find-links), the image's ENV, and no cache when the
  step says so; pip skips byte-compiling (`PIP_NO_COMPILE`), which changes nothing a
  trial sees since Python compiles each module on import, and saves about 10 s here. A
  RUN that is not a pip install is refused: it would need a real Docker build.

Then a quickstart sweep is compiled (`hydra.launcher.mode=compile`, from the repository
root as the README runs it) and its trials' container commands from pipeline.yaml run in
the image's working directory with the image's interpreter, `/gcs/` mapped to a folder;
so does the collector's command (kfp's `sh -ec ... python3 -m kfp.dsl.executor_main`).

Broken variants of the Dockerfile (no app, wrong working directory, no launcher) must
fail the same rehearsal. They reuse the environment of the real walk when their steps up
to the last RUN are the same (Docker's layer cache does the same), so they cost seconds.
"""

import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import yaml

from conftest import QUICKSTART, REPO, constant, load_pipeline, read_json, run_app, trial_tasks

DOCKERFILE = REPO / "examples" / "quickstart" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENTRY_MODULE = "hydra_plugins.vertex_pipelines_launcher.trial_entry"
SYSTEM_PATH = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
SWEEP = ["lr=0.1,0.01", "batch_size=32"]


class BuildError(AssertionError):
    """A step of the Dockerfile failed, as `docker build` would fail."""


# ---------------------------------------------------------------- reading the Dockerfile


@dataclass(frozen=True)
class Step:
    instruction: str
    value: str
    line: int = field(compare=False)


def parse_dockerfile(text: str) -> List[Step]:
    """Instructions with their arguments: comments dropped, continuation lines joined."""
    steps: List[Step] = []
    pending: List[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments end no instruction, also inside a continued one
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(p for p in pending if p)
        pending = []
        word, _, rest = joined.partition(" ")
        steps.append(Step(word.upper(), rest.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return steps


def exec_form(value: str) -> Optional[List[str]]:
    """A JSON array argument (`["a", "b"]`), or None for the shell form."""
    if value.startswith("["):
        parsed = json.loads(value)
        assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed), value
        return parsed
    return None


def env_pairs(value: str) -> Dict[str, str]:
    """`ENV A=1 B="x y"`, or the old `ENV A 1`."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: value.split(None, 1)[1] if len(words) > 1 else ""}
    return dict(w.split("=", 1) for w in words)


def python_version_of(image: str) -> Tuple[int, int]:
    """The Python of an official python image: python:3.11-slim -> (3, 11)."""
    found = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)[\w.-]*(?:@sha256:[0-9a-f]+)?", image)
    assert found, f"FROM {image}: the rehearsal knows the official python images only"
    return int(found.group(1)), int(found.group(2))


# ------------------------------------------------------- the build context (.dockerignore)


def ignore_rules(text: str) -> List[Tuple[bool, "re.Pattern[str]"]]:
    """.dockerignore patterns as (exception?, regex), in order: the last match decides."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = posixpath.normpath(line[1:].strip() if negated else line).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def is_ignored(relative: str, rules: List[Tuple[bool, "re.Pattern[str]"]]) -> bool:
    """Whether Docker leaves `relative` (a path in the context) out: a pattern that
    matches the path or one of its parent folders excludes it, `!` takes it back."""
    parts = relative.split("/")
    chain = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in rules:
        if any(regex.match(p) for p in chain):
            ignored = not negated
    return ignored


# --------------------------------------------------------------- walking the Dockerfile


@dataclass
class Image:
    root: Path  # stands for the image's /
    python_home: Path  # the environment standing for the image's interpreter
    env: Dict[str, str]
    workdir: str = "/"
    install_seconds: float = 0.0

    def path(self, image_path: str) -> Path:
        return self.root / posixpath.normpath(posixpath.join(self.workdir, image_path)).lstrip("/")

    def run_env(self, scratch: Path) -> Dict[str, str]:
        """What a process in the container sees: the image's PATH and ENV, its own /tmp."""
        scratch.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": os.pathsep.join([str(self.python_home / "bin"), *SYSTEM_PATH]),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            **self.env,
        }

    def run(self, argv: List[str], scratch: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        env = self.run_env(scratch)
        program = shutil.which(argv[0], path=env["PATH"])
        assert program, f"the image has no {argv[0]!r} on its PATH"
        return subprocess.run([program, *argv[1:]], cwd=self.path("."), env=env, capture_output=True, text=True, timeout=timeout)


def build_env(image: Image) -> Dict[str, str]:
    """A RUN step's environment: this machine's pip settings (to reach the package index
    as it does), no Python settings of the test's own environment, the image's PATH and ENV."""
    dropped = ("VIRTUAL_ENV", "CONDA_PREFIX", "__PYVENV_LAUNCHER__")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k not in dropped}
    env["PATH"] = os.pathsep.join([str(image.python_home / "bin"), *SYSTEM_PATH])
    env["PIP_NO_COMPILE"] = "1"  # no .pyc at install time; Python compiles what it imports
    env.update(image.env)
    return env


def run_step(image: Image, step: Step) -> None:
    argv = exec_form(step.value)
    command = " ".join(argv) if argv else step.value
    if not re.match(r"(python3? -m )?pip3? install\b", command):
        raise BuildError(f"line {step.line}: RUN {command}: the rehearsal walks pip installs only")
    cwd = image.path(".")
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run(
        argv or ["/bin/sh", "-c", step.value], cwd=cwd, env=build_env(image), capture_output=True, text=True, timeout=900
    )
    image.install_seconds += time.monotonic() - started
    if proc.returncode != 0:
        raise BuildError(
            f"line {step.line}: RUN {command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def copy_step(image: Image, step: Step, context: Path, rules) -> None:
    words = exec_form(step.value) or shlex.split(step.value)
    flags = [w for w in words if w.startswith("--")]
    words = [w for w in words if not w.startswith("--")]
    if any(f.startswith("--from") for f in flags):
        raise BuildError(f"line {step.line}: COPY {step.value}: the rehearsal builds one stage")
    *sources, dest = words
    assert sources, f"line {step.line}: COPY needs a source and a destination"
    into_folder = dest.endswith("/") or len(sources) > 1
    for source in sources:
        relative = posixpath.normpath(source).lstrip("/")
        if relative in ("", "."):
            relative = "."
        if any(c in relative for c in "*?["):
            raise BuildError(f"line {step.line}: COPY {source}: the rehearsal copies named files and folders only")
        found = context / relative
        if not found.exists() or (relative != "." and is_ignored(relative, rules) and not found.is_dir()):
            raise BuildError(f"line {step.line}: COPY failed: {source} not found in the build context")
        if found.is_file():
            target = image.path(posixpath.join(dest, posixpath.basename(relative)) if into_folder else dest)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, target)
            continue
        copied = 0
        for folder, _dirs, files in os.walk(found):
            folder_rel = os.path.relpath(folder, context)
            for name in files:
                rel = posixpath.normpath(posixpath.join(folder_rel, name))
                if is_ignored(rel, rules):
                    continue
                target = image.path(dest) / os.path.relpath(os.path.join(folder, name), found)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.join(folder, name), target)
                copied += 1
        if not copied:
            raise BuildError(f"line {step.line}: COPY failed: {source} not found in the build context")


def walk(text: str, tmp: Path, layers: Dict[Tuple[Step, ...], Path], context: Path = REPO) -> Image:
    """Carries out the Dockerfile `text`; `layers` maps the steps up to a last RUN to the
    environment those steps produced, as Docker's layer cache does."""
    steps = parse_dockerfile(text)
    unknown = sorted({s.instruction for s in steps} - {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "LABEL"})
    assert not unknown, f"the rehearsal does not know {unknown}"
    froms = [s for s in steps if s.instruction == "FROM"]
    assert len(froms) == 1 and steps[0].instruction == "FROM", "one FROM, first"
    runs = [i for i, s in enumerate(steps) if s.instruction == "RUN"]
    through_last_run = tuple(steps[: runs[-1] + 1] if runs else steps[:1])
    cached = layers.get(through_last_run)
    python_home = cached or tmp / "python"
    if cached is None:
        version = python_version_of(froms[0].value.split()[0])
        # The FROM's Python when this machine has it (the test's own first), else the test's.
        same = sys.version_info[:2] == version
        base = sys.executable if same else shutil.which(f"python{version[0]}.{version[1]}") or sys.executable
        subprocess.run([base, "-m", "venv", str(python_home)], check=True, timeout=300)
    image = Image(root=tmp / "image", python_home=python_home, env={})
    rules = ignore_rules(DOCKERIGNORE.read_text()) if DOCKERIGNORE.exists() else []
    for step in steps:
        if step.instruction == "ENV":
            image.env.update(env_pairs(step.value))
        elif step.instruction == "WORKDIR":
            image.workdir = posixpath.normpath(posixpath.join(image.workdir, step.value))
            image.path(".").mkdir(parents=True, exist_ok=True)
        elif step.instruction == "COPY":
            copy_step(image, step, context, rules)
        elif step.instruction == "RUN" and cached is None:
            run_step(image, step)
    layers[through_last_run] = python_home
    return image


# ----------------------------------------------------------- running the pipeline's tasks


def to_local(value: Any, gcs: Path) -> Any:
    """/gcs/BUCKET/... (Vertex's Cloud Storage FUSE mount) -> gcs/BUCKET/..., anywhere in `value`."""
    if isinstance(value, str) and value.startswith("/gcs/"):
        return f"{gcs}/{value[len('/gcs/'):]}"
    if isinstance(value, list):
        return [to_local(v, gcs) for v in value]
    if isinstance(value, dict):
        return {k: to_local(v, gcs) for k, v in value.items()}
    return value


def run_trials(image: Image, compiled: Dict[str, Any], gcs: Path, scratch: Path) -> Dict[int, subprocess.CompletedProcess]:
    by_name = {constant(t, "display_name"): t for t in trial_tasks(compiled["spec"]).values()}
    runs = {}
    for trial in compiled["manifest"]["trials"]:
        (pool,) = constant(by_name[trial["display_name"]], "worker_pool_specs")
        container = pool["container_spec"]
        runs[trial["number"]] = image.run(
            [*container["command"], *to_local(container["args"], gcs)], scratch / str(trial["number"])
        )
    return runs


def collector_command(spec: Dict[str, Any], gcs: Path, out: Path) -> Tuple[List[str], Dict[str, Any]]:
    """The collector task's container command with its executor input filled in."""
    (name,) = [n for n, t in spec["root"]["dag"]["tasks"].items() if t["componentRef"]["name"] == "comp-collect-trials"]
    task = spec["root"]["dag"]["tasks"][name]
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    params = {k: to_local(p["runtimeValue"]["constant"], gcs) for k, p in task["inputs"]["parameters"].items()}
    artifacts = {
        key: {"artifacts": [{"name": key, "type": d["artifactType"], "uri": str(out / key), "metadata": {}}]}
        for key, d in component["outputDefinitions"]["artifacts"].items()
    }
    given = {
        "inputs": {"parameterValues": params},
        "outputs": {"artifacts": artifacts, "outputFile": str(out / "executor_output.json")},
    }
    args = [a.replace("{{$}}", json.dumps(given)) for a in container["args"]]
    assert not any("{{$" in a for a in args), args
    return [*container["command"], *args], params


def quickstart_value(overrides: List[str]) -> float:
    """What the quickstart's train() returns for a trial's overrides, computed here."""
    spec = importlib.util.spec_from_file_location("quickstart_train", QUICKSTART)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = yaml.safe_load((QUICKSTART.parent / "conf" / "config.yaml").read_text())
    for override in overrides:
        cfg.update(yaml.safe_load(override.replace("=", ": ", 1)))
    return module.train(cfg["lr"], cfg["batch_size"], cfg["epochs"], cfg["seed"])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Dict[str, Any]:
    """The quickstart sweep compiled as the README runs it: from the repository root."""
    sweep = tmp_path_factory.mktemp("compiled") / "sweep"
    run_app(
        QUICKSTART,
        ["-m", "hydra/launcher=vertex_pipelines", "hydra.launcher.mode=compile", *SWEEP, f"hydra.sweep.dir={sweep}"],
        cwd=REPO,
    )
    return {"spec": load_pipeline(sweep / "pipeline.yaml"), "manifest": read_json(sweep / "manifest.json")}


@pytest.fixture(scope="module")
def layers() -> Dict[Tuple[Step, ...], Path]:
    return {}


@pytest.fixture(scope="module")
def image(tmp_path_factory, layers) -> Image:
    return walk(DOCKERFILE.read_text(), tmp_path_factory.mktemp("real"), layers)


@pytest.fixture(scope="module")
def trials_ran(image, compiled, tmp_path_factory) -> Tuple[Path, Dict[int, subprocess.CompletedProcess]]:
    tmp = tmp_path_factory.mktemp("trials")
    return tmp / "gcs", run_trials(image, compiled, tmp / "gcs", tmp / "scratch")


# --------------------------------------------------------------------------------- tests


def test_the_dockerfile_is_one_stage_on_a_python_the_launcher_supports():
    steps = parse_dockerfile(DOCKERFILE.read_text())
    assert steps[0].instruction == "FROM"
    assert python_version_of(steps[0].value) >= (3, 10)
    assert not {"ENTRYPOINT", "CMD"} & {s.instruction for s in steps}, "Vertex gives the commands"


def test_the_build_context_leaves_out_what_no_image_needs():
    rules = ignore_rules(DOCKERIGNORE.read_text())
    kept = ["pyproject.toml", "README.md", "hydra_plugins/vertex_pipelines_launcher/trial_entry.py", "components/collector.py"]
    for path in [*kept, "pipeline_builder/__init__.py", "examples/quickstart/train.py", "examples/quickstart/conf/config.yaml"]:
        assert not is_ignored(path, rules), path
    left = [".git/config", ".venv/bin/python", "multirun/2026-01-01/10-00-00/0/result.json", "tests/conftest.py", "key.json"]
    for path in [*left, "examples/quickstart/multirun/x", "components/__pycache__/collector.cpython-311.pyc"]:
        assert is_ignored(path, rules), path


@pytest.mark.slow
def test_the_install_is_real_and_the_launcher_is_imported_from_it(image, tmp_path):
    assert image.install_seconds > 0, "the launcher was installed by a RUN step"
    code = (
        f"import kfp, {ENTRY_MODULE} as t, hydra_vertex_pipelines.components.collector as c; print(t.__file__); print(c.__file__)"
    )
    proc = image.run(["python", "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    site = image.python_home / "lib"
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(site), f"{path} is not the installed copy"
    print(f"pip install steps took {image.install_seconds:.1f} s")


@pytest.mark.slow
def test_an_apps_own_components_and_pipeline_builder_do_not_shadow_the_installed_launcher(image, tmp_path):
    """The install names its folders hydra_vertex_pipelines.*: a project's packages named
    like the folders, in the working directory, leave the launcher's imports alone."""
    app = tmp_path / "app"
    for package in ("components", "pipeline_builder"):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text(f"raise ImportError('the app\'s own {package}')\n")
    (app / "components" / "collector.py").write_text("raise ImportError('the app\'s own components.collector')\n")
    env = image.run_env(tmp_path / "scratch")
    python = shutil.which("python3", path=env["PATH"])
    code = (
        "import hydra_vertex_pipelines.components.collector as c, hydra_vertex_pipelines.components.report as r, "
        "hydra_vertex_pipelines.pipeline_builder.spec.trials as t; print(c.__file__); print(r.__file__); print(t.__file__)"
    )
    proc = subprocess.run([python, "-c", code], cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(image.python_home / "lib"), f"{path} is not the installed copy"
    cli = shutil.which("hydra-vertex-pipelines", path=env["PATH"])
    assert cli and Path(cli).parent == image.python_home / "bin", "the install brings the command line"
    proc = subprocess.run([cli, "--help"], cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "run-local" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_the_working_directory_holds_the_app_where_the_trials_look_for_it(image, compiled):
    trial = trial_tasks(compiled["spec"])
    args = constant(next(iter(trial.values())), "worker_pool_specs")[0]["container_spec"]["args"]
    app = args[args.index("--") + 1]
    assert app == "examples/quickstart/train.py"  # relative to where the sweep started: the repository root
    assert image.workdir == "/app"
    assert image.path(app).is_file() and (image.path(app).parent / "conf" / "config.yaml").is_file()


@pytest.mark.slow
def test_each_trial_runs_in_the_image_and_writes_its_result(trials_ran, compiled):
    gcs, runs = trials_ran
    assert len(runs) == 2
    for trial in compiled["manifest"]["trials"]:
        proc = runs[trial["number"]]
        assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        record = read_json(to_local(trial["result_path"], gcs))
        assert record["status"] == "COMPLETED", record
        assert record["run_id"] == compiled["manifest"]["run_id"]
        assert record["return_value"] == quickstart_value(trial["overrides"])


@pytest.mark.slow
def test_the_trial_command_names_the_images_python(compiled, image):
    for task in trial_tasks(compiled["spec"]).values():
        (pool,) = constant(task, "worker_pool_specs")
        assert pool["container_spec"]["command"] == ["python", "-m", ENTRY_MODULE]  # trial.python
    assert (
        Path(shutil.which("python", path=image.run_env(image.root.parent / "which")["PATH"])).parent == image.python_home / "bin"
    )


@pytest.mark.slow
def test_the_collector_runs_in_the_trial_image(image, compiled, trials_ran, tmp_path):
    gcs, _ = trials_ran
    spec = compiled["spec"]
    executors = spec["deploymentSpec"]["executors"]
    trial_image = constant(next(iter(trial_tasks(spec).values())), "worker_pool_specs")[0]["container_spec"]["image_uri"]
    assert executors["exec-collect-trials"]["container"]["image"] == trial_image  # collector_image's default

    # The pieces of its command line: sh, mktemp, and python3 with kfp and this launcher.
    for tool in ("sh", "mktemp"):
        assert shutil.which(tool, path=image.run_env(tmp_path / "which")["PATH"]), tool
    proc = image.run(
        ["python3", "-c", "import kfp, hydra_vertex_pipelines.components.collector, hydra_vertex_pipelines.components.report"],
        tmp_path / "imports",
    )
    assert proc.returncode == 0, proc.stderr

    # And the whole command, as the task runs it.
    command, params = collector_command(spec, gcs, tmp_path / "outputs")
    assert command[:2] == ["sh", "-ec"] and "mktemp -d" in command[2] and "python3 -m kfp.dsl.executor_main" in command[2]
    proc = image.run(command, tmp_path / "collector")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    summary = read_json(params["summary_path"])
    assert summary["counts"] == {"COMPLETED": 2}
    values = {t["number"]: t["return_value"] for t in summary["trials"]}
    assert summary["best"]["number"] == min(values, key=values.get)
    assert Path(params["report_path"]).is_file()


def without(text: str, line_start: str) -> str:
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(line_start)]
    assert len(kept) == len(lines) - 1, f"no single line starts with {line_start!r}"
    return "".join(kept)


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the Dockerfile once"
    return text.replace(old, new)


BROKEN = {
    "the app is not copied": (lambda t: without(t, "COPY examples/quickstart/"), "No such file or directory"),
    "the app is copied flat, as for a sweep started in examples/quickstart": (
        lambda t: replaced(t, "COPY examples/quickstart/ examples/quickstart/", "COPY examples/quickstart/ ./"),
        "No such file or directory",
    ),
    "the working directory ends elsewhere": (lambda t: t + "WORKDIR /\n", "No such file or directory"),
    "the launcher is not installed": (lambda t: without(t, "RUN pip install"), "No module named 'hydra_plugins'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_dockerfile_missing_a_step_fails_the_rehearsal(broken, compiled, image, layers, tmp_path):
    edit, expected = BROKEN[broken]
    text = edit(DOCKERFILE.read_text())
    try:
        bad = walk(text, tmp_path, layers)
    except BuildError as e:
        assert expected in str(e)
        return
    runs = run_trials(bad, compiled, tmp_path / "gcs", tmp_path / "scratch")
    failed = [p for p in runs.values() if p.returncode != 0]
    assert failed, f"{broken}: the trials still ran"
    assert expected in failed[0].stderr, failed[0].stderr[-2000:]
    for trial in compiled["manifest"]["trials"]:
        assert not Path(to_local(trial["result_path"], tmp_path / "gcs")).exists()
