"""examples/preemptible, rehearsed as its README says: the emulator started from its
command line preempts each trial's first CustomJob; the trainer saves a checkpoint on
SIGTERM, and the resumed sweep's CustomJob resumes from it and returns the value an
uninterrupted run returns."""

import os
import shlex
import signal
import subprocess
import sys
from typing import List

import pytest

from conftest import REPO, read_json
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # starts the emulator's command line and runs sweeps

EXAMPLE = REPO / "examples" / "preemptible"
README = EXAMPLE / "README.md"


def readme_commands() -> List[List[str]]:
    """The example README's two commands: the emulator's and the sweep's."""
    lines = [line for line in README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    return [shlex.split(line) for line in lines]


def uninterrupted_loss(lr: float) -> float:
    import runpy

    trainer = runpy.run_path(str(EXAMPLE / "train.py"))
    data, w, b = trainer["make_data"](0), 0.0, 0.0
    for _ in range(50):
        w, b = trainer["step"](w, b, lr, data)
    return trainer["loss"](w, b, data)


def test_a_preempted_trial_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    emulator_command, sweep_command = readme_commands()
    assert emulator_command[:2] == ["hydra-vertex-pipelines", "emulator"]
    options = emulator_command[emulator_command.index("--fault") :]
    options[options.index("--preemption-grace") + 1] = "5"  # the trainer leaves within a second
    emulator = Emulator(tmp_path / "data", cwd=EXAMPLE, args=options)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)  # the checkpoints are read from it here
    try:
        env_name, env_value = sweep_command[0].split("=", 1)
        assert env_name == "STORAGE_EMULATOR_HOST" and sweep_command[1:3] == ["python", "train.py"]
        args = [a.replace("http://127.0.0.1:8090", emulator.api) for a in sweep_command[3:]]
        args = [a for a in args if not a.startswith("lr=")] + ["lr=0.1", "hydra.launcher.poll_interval=0.5"]
        first = _sweep(args + [f"hydra.sweep.dir={tmp_path / 'first'}"], emulator.gcs_url)
        assert first.returncode != 0, first.stdout + first.stderr
        trial = read_json(tmp_path / "first" / "manifest.json")["trials"][0]
        checkpoint = _checkpoint(emulator, trial["output_uri"])
        assert 0 < checkpoint["step"] < 50 and checkpoint["starts"] == [0]  # preempted mid-run, saved on SIGTERM
        jobs = emulator.request("/v1/projects/local/locations/us-central1/customJobs")["customJobs"]
        assert [(j["state"], j["error"]["code"]) for j in jobs] == [("JOB_STATE_FAILED", 10)]
        assert "was preempted" in jobs[0]["error"]["message"]

        resumed = _sweep(
            args + [f"hydra.sweep.dir={tmp_path / 'second'}", f"hydra.launcher.resume={tmp_path / 'first'}"], emulator.gcs_url
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        again = _checkpoint(emulator, trial["output_uri"])
        assert again["starts"] == [0, checkpoint["step"]] and again["step"] == 50  # resumed where it stopped
        summary = read_json(tmp_path / "second" / "summary.json")
        assert [(t["status"], t["return_value"]) for t in summary["trials"]] == [("COMPLETED", uninterrupted_loss(0.1))]
    finally:
        emulator.stop(signal.SIGTERM)


def _sweep(args: List[str], gcs_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs_url}
    return subprocess.run([sys.executable, "train.py", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300)


def _checkpoint(emulator: Emulator, output_uri: str) -> dict:
    """The trial's latest checkpoint, read from the Cloud Storage emulator."""
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    return gcs.read_json(gcs.client("local"), f"{output_uri.rstrip('/')}/checkpoints/latest.json")
