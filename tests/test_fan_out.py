"""Fan-out strategies: one task per trial, or one task looping over the trials."""

import json
import time

import pytest
from google.protobuf import json_format
from hydra.core.utils import JobStatus
from kfp.pipeline_spec import pipeline_spec_pb2

from conftest import APPS, constant, launch_in_process, load_pipeline, read_json, submit_overrides

FAULTS = APPS / "faults"
COMPILE = [
    "hydra.launcher.mode=compile",
    "hydra.launcher.pipeline_root=gs://bkt/root",
    "hydra.launcher.trial.image_uri=img",
    "hydra.launcher.trial.entry=command",
]


def test_thousand_trials_loop_with_the_requested_parallelism(tmp_path):
    jobs = [[f"x={i}", f"+tag=t{i % 7}"] for i in range(1000)]
    start = time.time()
    launch_in_process(FAULTS / "conf", [f"hydra.sweep.dir={tmp_path}", *COMPILE, "hydra.launcher.max_parallel=7"], jobs)
    elapsed = time.time() - start
    raw = load_pipeline(tmp_path / "pipeline.yaml")
    spec = json_format.ParseDict(raw, pipeline_spec_pb2.PipelineSpec())
    loops = [t for t in spec.root.dag.tasks.values() if t.HasField("parameter_iterator")]
    assert len(loops) == 1
    assert loops[0].iterator_policy.parallelism_limit == 7
    items = json.loads(loops[0].parameter_iterator.items.raw)
    assert len(items) == 1000
    for i, item in enumerate(items):
        args = item["worker_pool_specs"][0]["container_spec"]["args"]
        assert args[args.index("--num") + 1] == str(i)
        assert args[-2:] == [f"x={i}", f"+tag=t{i % 7}"]  # the job's overrides end its command line
        assert item["base_output_directory"].endswith(f"/{i}")
        assert item["display_name"] == f"faults-{i} x={i} +tag=t{i % 7}"
    manifest = read_json(tmp_path / "manifest.json")
    assert manifest["fan_out"] == "parallel_for" and manifest["parallelism"] == 7
    assert elapsed < 120  # a regression guard only; speed is measured in benchmarks/


@pytest.mark.parametrize(
    "trials,max_parallel,expected",
    [(50, None, ("tasks", None)), (51, None, ("parallel_for", 50)), (3, 2, ("parallel_for", 2))],
)
def test_auto_chooses_by_size_and_limit(tmp_path, trials, max_parallel, expected):
    overrides = [f"hydra.sweep.dir={tmp_path}", *COMPILE]
    if max_parallel:
        overrides.append(f"hydra.launcher.max_parallel={max_parallel}")
    launch_in_process(FAULTS / "conf", overrides, [[f"x={i}"] for i in range(trials)])
    manifest = read_json(tmp_path / "manifest.json")
    assert (manifest["fan_out"], manifest["parallelism"]) == expected


def test_tasks_with_a_limit_is_refused(tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError

    with pytest.raises(Exception) as e:
        launch_in_process(
            FAULTS / "conf",
            [f"hydra.sweep.dir={tmp_path}", *COMPILE, "hydra.launcher.fan_out=tasks", "hydra.launcher.max_parallel=4"],
            [["x=1"]],
        )
    assert (
        "hydra.launcher.fan_out='tasks' is not accepted: parallel_for or auto when hydra.launcher.max_parallel is set"
        in str(e.value)
    )
    assert not isinstance(e.value, ConfigError) or True
    assert not (tmp_path / "pipeline.yaml").exists()


def test_per_trial_settings_vary_inside_the_loop(tmp_path):
    from conftest import APPS as apps

    conf = apps / "per_trial" / "conf"
    overrides = [f"hydra.sweep.dir={tmp_path}", "hydra.launcher.mode=compile", "hydra.launcher.fan_out=parallel_for"]
    launch_in_process(conf, overrides, [["model=small"], ["model=large"]])
    raw = load_pipeline(tmp_path / "pipeline.yaml")
    loop = next(t for t in raw["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    items = json.loads(loop["parameterIterator"]["items"]["raw"])
    machines = [i["worker_pool_specs"][0]["machine_spec"] for i in items]
    assert machines == [
        {"machine_type": "n1-standard-4"},
        {"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1},
    ]
    assert [i["labels"]["model"] for i in items] == ["small", "large"]


@pytest.mark.slow
def test_loop_runs_through_the_emulator(emulators, tmp_path):
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        *submit_overrides(emulators),
        "hydra.launcher.max_parallel=2",
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
    ]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=1"], ["x=raise"], ["x=3"]])
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert returns[2].return_value == 3.0
    run = emulators["vertex"].runs[read_json(tmp_path / "manifest.json")["run_id"]]
    names = sorted(t["taskName"] for t in run.view()["jobDetail"]["taskDetails"])
    assert names == ["collect-trials", "custom-training-job-0", "custom-training-job-1", "custom-training-job-2"]


@pytest.mark.slow
def test_large_sweeps_hand_the_collector_a_trial_file(tmp_path):
    """The collector's input travels as one command-line argument (at most 128 KiB): past
    32 KiB of trial rows, the rows go into a file in the run folder."""
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=local",
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{APPS / 'instant.py'}]",
    ]
    returns = launch_in_process(FAULTS / "conf", overrides, [[f"x={i}"] for i in range(400)])
    assert [r.return_value for r in returns] == [2 * i for i in range(400)]
    collector = load_pipeline(tmp_path / "pipeline.yaml")["root"]["dag"]["tasks"]["collect-trials"]
    assert constant(collector, "trials") == []
    assert constant(collector, "trials_path").endswith("/trials.json")
    assert len(json.loads((tmp_path / "trials.json").read_text())) == 400
    assert read_json(tmp_path / "summary.json")["counts"] == {"COMPLETED": 400}


@pytest.mark.slow
def test_trial_file_reaches_the_collector_through_the_bucket(emulators, tmp_path, monkeypatch):
    """Submission uploads the trial file and the collector reads it from the bucket. The
    limit is lowered so that a few trials take the file path (the real limit is measured
    in local mode above)."""
    from hydra_vertex_pipelines.pipeline_builder.spec import sweep

    monkeypatch.setattr(sweep, "INLINE_TRIALS_LIMIT", 10)
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        *submit_overrides(emulators),
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{APPS / 'instant.py'}]",
    ]
    returns = launch_in_process(FAULTS / "conf", overrides, [[f"x={i}"] for i in range(5)])
    assert [r.return_value for r in returns] == [2 * i for i in range(5)]
    collector = load_pipeline(tmp_path / "pipeline.yaml")["root"]["dag"]["tasks"]["collect-trials"]
    assert constant(collector, "trials") == []
    assert constant(collector, "trials_path").startswith("/gcs/sweeps/runs/")
    assert read_json(tmp_path / "summary.json")["counts"] == {"COMPLETED": 5}  # the one summary read


def test_run_local_stages_the_trial_file_of_a_compiled_sweep(tmp_path, monkeypatch):
    """A compiled sweep's trial list sits in the sweep dir until submission uploads it;
    `run-local` of that pipeline.yaml puts it (and its trial folders) where the run reads it."""
    import subprocess
    import sys

    from conftest import REPO
    from hydra_vertex_pipelines.pipeline_builder.spec import sweep as sweep_spec

    monkeypatch.setattr(sweep_spec, "INLINE_TRIALS_LIMIT", 10)
    sweep = tmp_path / "sweep"
    command = f"hydra.launcher.trial.command=[python,{APPS / 'instant.py'}]"
    launch_in_process(FAULTS / "conf", [f"hydra.sweep.dir={sweep}", *COMPILE, command], [[f"x={i}"] for i in range(3)])
    manifest = read_json(sweep / "manifest.json")
    assert manifest["files"] == {manifest["trials_file"]: str(sweep / "trials.json")}
    root = tmp_path / "bucket"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hydra_vertex_pipelines.pipeline_builder",
            "run-local",
            str(sweep / "pipeline.yaml"),
            "--root",
            str(root),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = read_json(root / manifest["summary_path"][len("/gcs/") :])
    assert summary["counts"] == {"COMPLETED": 3}
    assert sorted(r["return_value"] for r in summary["trials"]) == [0, 2, 4]


@pytest.mark.parametrize("loop", [["hydra.launcher.fan_out=parallel_for"], ["hydra.launcher.max_parallel=3"]])
def test_a_one_trial_loop_compiles_and_runs(tmp_path, loop):
    """kfp cannot type an empty loop item: a lone trial's item still holds its own inputs."""
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=local",
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
        *loop,
    ]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=4"]])
    assert [(r.status, r.return_value) for r in returns] == [(JobStatus.COMPLETED, 4.0)]
    raw = load_pipeline(tmp_path / "pipeline.yaml")
    loop_task = next(t for t in raw["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    (item,) = json.loads(loop_task["parameterIterator"]["items"]["raw"])
    assert item["display_name"] == "faults-0 x=4" and item["base_output_directory"].endswith("/0")
    assert read_json(tmp_path / "summary.json")["counts"] == {"COMPLETED": 1}
