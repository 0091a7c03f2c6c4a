"""A user's project may hold its own `components` or `pipeline_builder` package (common in
KFP projects): in the script's folder, the working directory and the image's working
directory (where the emulator, like Vertex, runs the trials and the collector). The
launcher's own packages are installed under other names, so every mode works there."""

import subprocess
from pathlib import Path

import pytest

from conftest import CLI, read_json, run_app
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # sweeps of a user project in subprocesses, the emulators

APP = '''\
import hydra
from omegaconf import DictConfig

from components import SCALE  # the project's own `components` package


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return float(cfg.x) * SCALE


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Hydra app beside its own `components` and `pipeline_builder` packages, whose
    modules named like the launcher's fail on import."""
    root = tmp_path / "project"
    (root / "conf").mkdir(parents=True)
    (root / "train.py").write_text(APP)
    (root / "conf" / "config.yaml").write_text("defaults:\n  - override hydra/launcher: vertex_pipelines\n  - _self_\n\nx: 0\n")
    (root / "components").mkdir()
    (root / "components" / "__init__.py").write_text("SCALE = 10\n")
    for name in ("collector", "collector_op", "report", "sweep_files", "custom_job_op"):
        (root / "components" / f"{name}.py").write_text(f"raise ImportError('the project\\'s own components.{name}')\n")
    (root / "pipeline_builder").mkdir()
    (root / "pipeline_builder" / "__init__.py").write_text("raise ImportError(\"the project's own pipeline_builder\")\n")
    return root


def test_local_mode(project, tmp_path):
    sweep = tmp_path / "sweep"
    run_app(project / "train.py", ["-m", "hydra.launcher.mode=local", "x=1,2", f"hydra.sweep.dir={sweep}"], cwd=project)
    summary = read_json(sweep / "summary.json")  # written by the collector
    assert [(t["status"], t["return_value"]) for t in summary["trials"]] == [("COMPLETED", 10.0), ("COMPLETED", 20.0)]


def test_compile_mode(project, tmp_path):
    sweep = tmp_path / "sweep"
    run_app(
        project / "train.py",
        [
            "-m",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
            "hydra.launcher.trial.image_uri=local",
            "x=1,2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=project,
    )
    assert "hydra_vertex_pipelines.components.collector" in (sweep / "pipeline.yaml").read_text()


def test_the_command_line_runs_in_the_project(project, tmp_path):
    sweep = tmp_path / "sweep"
    run_app(
        project / "train.py",
        [
            "-m",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
            "hydra.launcher.trial.image_uri=local",
            "x=3",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=project,
    )
    proc = subprocess.run(
        [CLI, "run-local", str(sweep / "pipeline.yaml"), "--root", str(tmp_path / "gcs")],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [summary] = (tmp_path / "gcs").rglob("summary.json")
    assert [(t["status"], t["return_value"]) for t in read_json(summary)["trials"]] == [("COMPLETED", 30.0)]


def test_emulator_mode(project, tmp_path, monkeypatch):
    emulator = Emulator(tmp_path / "vertex-emulator", cwd=project)  # the image's working directory
    try:
        sweep = tmp_path / "sweep"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
        run_app(
            project / "train.py",
            [
                "-m",
                f"hydra.launcher.api_endpoint={emulator.api}",
                "hydra.launcher.project=local",
                "hydra.launcher.pipeline_root=gs://my-bucket/sweeps",
                "hydra.launcher.trial.image_uri=local",
                "hydra.launcher.poll_interval=0.5",
                "x=1,2",
                f"hydra.sweep.dir={sweep}",
            ],
            cwd=project,
        )
        summary = read_json(sweep / "summary.json")
        assert [(t["status"], t["return_value"]) for t in summary["trials"]] == [("COMPLETED", 10.0), ("COMPLETED", 20.0)]
    finally:
        emulator.stop()
