import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "apps"
QUICKSTART = REPO / "examples" / "quickstart" / "train.py"
# The command line pyproject.toml installs beside the interpreter.
CLI = str(Path(sys.executable).with_name("hydra-vertex-pipelines"))


def run_app(script: Path, args: List[str], cwd: Path = REPO, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Runs a Hydra app as a user would, in a fresh interpreter."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **env}
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def readme_line(start: str) -> str:
    """The README's shell line (in a ```bash block) that starts with `start`, as written."""
    import re

    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"the README has {len(lines)} lines that start with {start!r}"
    return lines[0]


def user_checkout(root: Path) -> Path:
    """A copy of the repository's examples, with `.venv` the environment running the
    tests: where the README's commands run as a user types them in a clone."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("multirun", "outputs", "__pycache__"))
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def run_shell(line: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(line, shell=True, executable="/bin/bash", cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{line}: exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_trial_command(command: List[str], args: List[str], gcs_root: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Runs a compiled trial's container command here, with /gcs/ mapped to `gcs_root`."""
    assert command[0] == "python"
    mapped = [f"{gcs_root}/{a[len('/gcs/'):]}" if a.startswith("/gcs/") else a for a in args]
    proc = subprocess.run([sys.executable, *command[1:], *mapped], cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def wait_for(predicate: Callable[[], Any], timeout: float = 90.0, what: Union[str, Callable[[], Any]] = "") -> None:
    """Polls `predicate` until it holds, or fails the test after `timeout` seconds saying
    what it waited for (`what`, or what `what()` returns then)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether process `pid` is running: a zombie has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def load_pipeline(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text())


def trial_tasks(spec: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    tasks = spec["root"]["dag"]["tasks"]
    return {name: t for name, t in tasks.items() if t["componentRef"]["name"].startswith("comp-custom-training-job")}


def constant(task: Dict[str, Any], name: str) -> Any:
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


@pytest.fixture
def compile_args(tmp_path: Path) -> List[str]:
    return [
        "-m",
        "hydra/launcher=vertex_pipelines",
        "hydra.launcher.mode=compile",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]


def launch_in_process(conf_dir: Path, overrides: List[str], jobs: List[List[str]], task_function: Any = None) -> List[Any]:
    """Calls the launcher the way a sweeper does, and returns its JobReturns."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.types import HydraContext

    state = Singleton.get_state()  # Hydra's globals (version base, config) must not leak to other tests
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3", job_name=conf_dir.parent.name):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(cfg))
            launcher = Plugins.instance().instantiate_launcher(
                hydra_context=context, task_function=task_function or (lambda c: None), config=cfg
            )
            return list(launcher.launch(jobs, initial_job_idx=0))
    finally:
        Singleton.set_state(state)


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path, monkeypatch):
    """Each test gets an empty user cache (built wheels live there), not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


# Never let google-auth probe the GCE metadata server: it is not on this machine.
os.environ.setdefault("NO_GCE_CHECK", "True")


@pytest.fixture(scope="session")
def emulators(tmp_path_factory):
    """A Cloud Storage emulator and the project's Vertex emulator, on 127.0.0.1."""
    from gcp_storage_emulator.server import create_server

    from hydra_vertex_pipelines.pipeline_builder.emulator.server import VertexEmulator

    storage_server = create_server("127.0.0.1", 0, in_memory=True)
    storage_server.start()
    gcs_url = f"http://127.0.0.1:{storage_server._api._httpd.server_address[1]}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
    vertex = VertexEmulator(tmp_path_factory.mktemp("vertex"), workdir=REPO)
    port = vertex.start()
    try:
        yield {"vertex": vertex, "api_endpoint": f"http://127.0.0.1:{port}", "gcs_url": gcs_url}
    finally:
        vertex.stop()
        storage_server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def submit_overrides(emulators: Dict[str, Any], bucket: str = "sweeps") -> List[str]:
    return [
        "hydra.launcher.mode=submit",
        f"hydra.launcher.api_endpoint={emulators['api_endpoint']}",
        "hydra.launcher.project=local",
        f"hydra.launcher.pipeline_root=gs://{bucket}/runs",
        "hydra.launcher.trial.image_uri=local",
        "hydra.launcher.poll_interval=0.5",
    ]
