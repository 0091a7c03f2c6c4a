"""Compiling imports kfp without its API client (and the kubernetes package it imports),
and compiles the same pipeline.yaml, byte for byte, as with the whole SDK imported."""

import subprocess
import sys

import pytest

COMPILE = """
import sys
if sys.argv[1] == "whole":
    import kfp  # the whole SDK, kfp.Client included, as before
from hydra_vertex_pipelines.pipeline_builder.pipeline import compile_pipeline_spec
from hydra_vertex_pipelines.pipeline_builder.spec import SweepSpec, TrialSettings, build_trial
trials = tuple(
    build_trial(number=i, job_id=f"r_{i}", overrides=[f"lr={i}"], settings=TrialSettings(image_uri="img", disable_retries=i == 1),
                command=["python", "-m", "app"], args=["a"], output_uri=f"gs://b/r/{i}", name_prefix="t", labels={"hydra-run": "r"})
    for i in range(3)
)
sweep = SweepSpec(name="t", run_id="r", pipeline_root="gs://b", run_root="gs://b/r", trials=trials, collector_image="img",
                  fan_out=sys.argv[2], parallelism=2 if sys.argv[2] == "parallel_for" else None)
compile_pipeline_spec(sweep, sys.argv[3])
import kfp
print("kubernetes" in sys.modules, kfp.Client.__name__, "kubernetes" in sys.modules)
"""


@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
def test_the_compiled_file_is_the_same_without_kfps_client(tmp_path, fan_out):
    outputs = {}
    for how in ("whole", "light"):
        path = tmp_path / f"{how}.yaml"
        proc = subprocess.run(
            [sys.executable, "-c", COMPILE, how, fan_out, str(path)], capture_output=True, text=True, check=True
        )
        outputs[how] = (path.read_bytes(), proc.stdout.split())
    assert outputs["light"][0] == outputs["whole"][0]
    assert outputs["light"][1] == ["False", "Client", "True"]  # no kubernetes until kfp.Client is asked for
    assert outputs["whole"][1] == ["True", "Client", "True"]
