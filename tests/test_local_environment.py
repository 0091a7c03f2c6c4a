"""Trial processes get Vertex's environment: AIP_* as gs:// URIs whose /gcs/ paths work
here, and the job's timeout enforced as Vertex enforces it."""

import io
import time
from pathlib import Path

import pytest

from conftest import alive
from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
from test_local_runner import compile_sweep, trial

# What a trial does on Vertex to write its model: open the URI's Cloud Storage FUSE path.
WRITE_MODEL = """
import glob, os, pathlib, shutil
model = os.environ["AIP_MODEL_DIR"]
assert model == "gs://b/run/0/model/", model
assert os.environ["AIP_CHECKPOINT_DIR"] == "gs://b/run/0/checkpoints/"
assert os.environ["AIP_TENSORBOARD_LOG_DIR"] == "gs://b/run/0/logs/"
fuse = model.replace("gs://", "/gcs/", 1)
os.makedirs(fuse, exist_ok=True)
with open(fuse + "model.txt", "w") as f:
    f.write("weights")
pathlib.Path(os.environ["AIP_CHECKPOINT_DIR"].replace("gs://", "/gcs/", 1), "step-1").mkdir(parents=True)
shutil.copy(fuse + "model.txt", fuse + "copy.txt")
assert pathlib.Path(fuse, "copy.txt").read_text() == "weights"
assert sorted(os.listdir(fuse)) == ["copy.txt", "model.txt"] == sorted(os.path.basename(p) for p in glob.glob(fuse + "*"))
print("wrote", fuse)
"""


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "fresh-interpreter"])
def test_aip_folders_are_uris_whose_gcs_paths_open_here(tmp_path, forked):
    spec = compile_sweep(tmp_path, [trial(0, TrialSettings(image_uri="img"), ["python", "-c", WRITE_MODEL], [])])
    settings = RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work", preload=[] if forked else None)
    runner = LocalRunner(spec, settings, console=io.StringIO())
    result = runner.run()
    job = next(t for t in result.tasks.values() if t.kind == "custom_job")
    assert job.state == "SUCCEEDED", job.error
    out = tmp_path / "gcs" / "b" / "run" / "0"
    assert (out / "model" / "model.txt").read_text() == "weights"
    assert (out / "checkpoints" / "step-1").is_dir()
    assert not Path("/gcs").exists()


@pytest.mark.slow
def test_the_job_stops_at_its_timeout_as_on_vertex(tmp_path):
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "open(os.path.join(sys.argv[1], 'child-' + os.environ['RANK']), 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    settings = TrialSettings(image_uri="img", replica_count=2, timeout="2s")
    spec = compile_sweep(tmp_path, [trial(0, settings, ["python", "-c", script], ["/gcs/b/run/0"])])
    started = time.monotonic()
    result = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO()).run()
    job = next(t for t in result.tasks.values() if t.kind == "custom_job")
    assert job.state == "FAILED"
    assert "ran past its timeout of 2s" in job.error and "scheduling.timeout" in job.error
    assert time.monotonic() - started < 20
    children = [int((tmp_path / "gcs" / "b" / "run" / "0" / f"child-{rank}").read_text()) for rank in (0, 1)]
    assert not [pid for pid in children if alive(pid)]  # both replicas and their children stopped
    collector = next(t for t in result.tasks.values() if t.kind == "container")
    assert collector.state == "SUCCEEDED"


def test_nested_runs_sitecustomize_files_chain_without_recursion(tmp_path):
    """A local run inside a trial adds its own sitecustomize before the outer run's: each
    runs once, and the user's own sitecustomize after them still runs."""
    import os
    import subprocess
    import sys

    from hydra_vertex_pipelines.pipeline_builder.local import write_interpreter_files

    outer, inner, user = tmp_path / "outer", tmp_path / "inner", tmp_path / "user"
    write_interpreter_files(tmp_path / "shims-outer", outer, sys.executable)
    write_interpreter_files(tmp_path / "shims-inner", inner, sys.executable)
    user.mkdir()
    (user / "sitecustomize.py").write_text("print('user sitecustomize')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (inner, outer, user)))}
    proc = subprocess.run([sys.executable, "-c", "print('ran')"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Error in sitecustomize" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines() == ["user sitecustomize", "ran"]
