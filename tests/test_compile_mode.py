"""Compile mode end to end: a real Hydra multirun writes pipeline.yaml and the manifest."""

import itertools
import json
import subprocess
import sys

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from conftest import QUICKSTART, REPO, constant, load_pipeline, read_json, run_app, trial_tasks

CUSTOM_JOB_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"


def is_hydra_arg(arg: str) -> bool:
    return arg.lstrip("+~").startswith(("hydra.", "hydra/"))


@pytest.fixture(scope="module")
def quickstart_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("quickstart") / "sweep"
    proc = run_app(
        QUICKSTART,
        [
            "-m",
            "hydra/launcher=vertex_pipelines",
            "hydra.launcher.mode=compile",
            "lr=0.1,0.01",
            "batch_size=32,64",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    return sweep, proc


def test_pipeline_has_four_custom_jobs_and_a_collector(quickstart_sweep):
    sweep, _ = quickstart_sweep
    raw = load_pipeline(sweep / "pipeline.yaml")
    spec = json_format.ParseDict(raw, pipeline_spec_pb2.PipelineSpec())
    tasks = spec.root.dag.tasks
    executors = spec.deployment_spec["executors"]

    def executor_command(task) -> str:
        component = spec.components[task.component_ref.name]
        return json.dumps(json_format.MessageToDict(executors[component.executor_label]))

    trials = [n for n, t in tasks.items() if CUSTOM_JOB_LAUNCHER in executor_command(t)]
    others = [n for n in tasks if n not in trials]
    assert len(trials) == 4
    assert len(others) == 1
    collector = tasks[others[0]]
    assert "hydra_vertex_pipelines.components.collector" in executor_command(collector)
    assert collector.trigger_policy.strategy == pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.ALL_UPSTREAM_TASKS_COMPLETED
    assert sorted(collector.dependent_tasks) == sorted(trials)
    for name in trials:
        assert not tasks[name].dependent_tasks, "trials must run in parallel"


def test_each_trial_carries_exactly_its_overrides(quickstart_sweep):
    sweep, _ = quickstart_sweep
    tasks = trial_tasks(load_pipeline(sweep / "pipeline.yaml"))
    seen = []
    for task in tasks.values():
        (pool,) = constant(task, "worker_pool_specs")
        args = pool["container_spec"]["args"]
        assert pool["container_spec"]["command"] == ["python", "-m", "hydra_plugins.vertex_pipelines_launcher.trial_entry"]
        app = args[args.index("--") + 1 :]
        assert app[:3] == ["examples/quickstart/train.py", "--config-name=config", "--multirun"]
        seen.append(tuple(a for a in app[3:] if not is_hydra_arg(a)))
    expected = [(f"lr={lr}", f"batch_size={bs}") for lr, bs in itertools.product(["0.1", "0.01"], ["32", "64"])]
    assert sorted(seen) == sorted(expected)


def test_worker_pool_specs_are_valid_vertex_protos(quickstart_sweep):
    from google.cloud.aiplatform_v1.types import WorkerPoolSpec

    sweep, _ = quickstart_sweep
    for task in trial_tasks(load_pipeline(sweep / "pipeline.yaml")).values():
        for pool in constant(task, "worker_pool_specs"):
            message = json_format.ParseDict(pool, WorkerPoolSpec.pb(WorkerPoolSpec()))
            assert message.container_spec.image_uri == "us-docker.pkg.dev/my-project/sweeps/quickstart:latest"
            assert message.machine_spec.machine_type == "n1-standard-4"


def test_trials_write_to_their_own_output_dirs(quickstart_sweep):
    sweep, _ = quickstart_sweep
    manifest = read_json(sweep / "manifest.json")
    tasks = trial_tasks(load_pipeline(sweep / "pipeline.yaml"))
    by_name = {constant(t, "display_name"): t for t in tasks.values()}
    assert len(manifest["trials"]) == 4
    for trial in manifest["trials"]:
        task = by_name[trial["display_name"]]
        assert trial["output_uri"] == f"{manifest['run_root']}/{trial['number']}"
        assert trial["output_dir"] == "/gcs/" + trial["output_uri"][len("gs://") :]
        assert constant(task, "base_output_directory") == trial["output_uri"]
        args = constant(task, "worker_pool_specs")[0]["container_spec"]["args"]
        options = args[: args.index("--")]
        assert options == [
            "--num",
            str(trial["number"]),
            "--run-id",
            manifest["run_id"],
            "--sweep-dir",
            f"/gcs/{manifest['run_root'][5:]}",
        ]
        labels = constant(task, "labels")
        assert labels == {"hydra-app": "train", "hydra-run": manifest["run_id"]}
    assert len({t["output_uri"] for t in manifest["trials"]}) == 4


def test_logs_paths_and_how_to_submit(quickstart_sweep):
    sweep, proc = quickstart_sweep
    out = proc.stdout + proc.stderr
    assert f"Wrote {sweep / 'pipeline.yaml'}" in out
    assert f"Wrote {sweep / 'manifest.json'}" in out
    hint = [line for line in out.splitlines() if "To run it on Vertex AI:" in line]
    assert len(hint) == 1 and "hydra.launcher.mode=submit" in hint[0]
    assert "hydra.launcher.mode=compile" not in hint[0]


def test_pipeline_name_comes_from_the_app(quickstart_sweep):
    sweep, _ = quickstart_sweep
    raw = load_pipeline(sweep / "pipeline.yaml")
    assert raw["pipelineInfo"]["name"] == "train"
    assert raw["defaultPipelineRoot"] == "gs://my-bucket/hydra-sweeps"


@pytest.mark.parametrize("mode", ["compile", pytest.param("local", marks=pytest.mark.slow)])
def test_compile_and_local_modes_never_import_aiplatform(tmp_path, mode):
    argv = [str(QUICKSTART), "-m", f"hydra.launcher.mode={mode}", "lr=0.1,0.01", f"hydra.sweep.dir={tmp_path}"]
    probe = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.startswith('google.cloud.aiplatform'))\n"
        "print('AIPLATFORM_MODULES', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "pipeline.yaml").exists()
    assert "AIPLATFORM_MODULES []" in proc.stdout
    if mode == "local":
        assert read_json(tmp_path / "summary.json")["counts"] == {"COMPLETED": 2}


@pytest.mark.slow
def test_second_compile_into_same_sweep_dir_keeps_the_first(tmp_path):
    args = ["-m", "hydra/launcher=vertex_pipelines", "hydra.launcher.mode=compile", "lr=0.5", f"hydra.sweep.dir={tmp_path}"]
    run_app(QUICKSTART, args)
    first = (tmp_path / "pipeline.yaml").read_text()
    run_app(QUICKSTART, args)
    assert (tmp_path / "pipeline.yaml").read_text() == first
    assert (tmp_path / "pipeline-2.yaml").exists() and (tmp_path / "manifest-2.json").exists()
    assert read_json(tmp_path / "manifest-2.json")["pipeline_yaml"] == str(tmp_path / "pipeline-2.yaml")


def test_basic_sweeper_finishes_cleanly_without_values(quickstart_sweep):
    _, proc = quickstart_sweep
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_sweeper_that_needs_values_gets_a_clear_error(tmp_path):
    proc = run_app(
        QUICKSTART,
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "lr=interval(0.001,0.5)",
            "hydra.launcher.mode=compile",
            f"hydra.sweep.dir={tmp_path}",
        ],
        check=False,
    )
    assert proc.returncode == 1
    assert "hydra.launcher.mode=compile produces no trial values" in proc.stderr
    assert "OptunaSweeper needs them" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "pipeline.yaml").exists()
    assert len(read_json(tmp_path / "manifest.json")["trials"]) == 2
