"""The local runner on hand-built pipelines: multi-replica trials and trigger policies."""

import io

import pytest

from conftest import APPS, read_json
from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings, load_pipeline
from hydra_vertex_pipelines.pipeline_builder.pipeline import compile_pipeline_spec
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings, WorkerPoolSettings
from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
from hydra_vertex_pipelines.pipeline_builder.spec.trials import build_trial


def compile_sweep(tmp_path, trials, collector=True):
    sweep = SweepSpec(
        name="t", run_id="run", pipeline_root="gs://b", run_root="gs://b/run", trials=tuple(trials), collector_image="img"
    )
    compile_pipeline_spec(sweep, tmp_path / "pipeline.yaml")
    return load_pipeline(tmp_path / "pipeline.yaml")


def trial(number, settings, command, args):
    return build_trial(
        number=number,
        job_id=f"run_{number}",
        overrides=[f"n={number}"],
        settings=settings,
        command=command,
        args=args,
        output_uri=f"gs://b/run/{number}",
        name_prefix="t",
    )


@pytest.mark.parametrize(
    "replicas,settings",
    [
        (2, TrialSettings(image_uri="img", replica_count=2)),
        (3, TrialSettings(image_uri="img", replica_count=3)),
        # 1 chief + 2 workers; the reduction server (pool 2) only runs on Vertex
        (
            3,
            TrialSettings(
                image_uri="img", workers=WorkerPoolSettings(replica_count=2), reduction_server=WorkerPoolSettings(replica_count=1)
            ),
        ),
    ],
)
def test_replicas_rendezvous_with_consistent_cluster_env(tmp_path, replicas, settings):
    spec = compile_sweep(tmp_path, [trial(0, settings, ["python", str(APPS / "rendezvous.py")], ["/gcs/b/run/0"])])
    console = io.StringIO()
    result = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=console).run()
    out = tmp_path / "gcs" / "b" / "run" / "0"
    tasks = [t for t in result.tasks.values() if t.kind == "custom_job"]
    assert tasks[0].state == "SUCCEEDED", tasks[0].error
    seen = [read_json(out / f"rank-{r}.json") for r in range(replicas)]
    assert [s["rank"] for s in seen] == list(range(replicas))
    assert {s["world_size"] for s in seen} == {replicas}
    assert len({s["master"] for s in seen}) == 1
    assert all(s["peers"] == list(range(replicas)) for s in seen)
    cluster = seen[0]["cluster_spec"]["cluster"]
    assert len(cluster["workerpool0"]) == 1 and len(cluster["workerpool1"]) == replicas - 1
    assert cluster["workerpool0"][0] == seen[0]["master"]
    assert all(s["cluster_spec"]["cluster"] == cluster for s in seen)
    assert [s["cluster_spec"]["task"] for s in seen] == [{"type": "workerpool0", "index": 0}] + [
        {"type": "workerpool1", "index": i} for i in range(replicas - 1)
    ]
    assert [s["tf_config"]["task"]["type"] for s in seen] == ["chief"] + ["worker"] * (replicas - 1)
    assert seen[0]["model_dir"] == "gs://b/run/0/model/"  # a URI, as on Vertex
    assert len({s["job_id"] for s in seen}) == 1
    assert (out / ".vertex" / "trial.log").exists() and (out / ".vertex" / "trial-workerpool1-0.log").exists()
    assert f"rank 1 of {replicas} met" in console.getvalue()


def test_a_failed_replica_fails_the_trial_and_stops_the_others(tmp_path):
    script = "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(7)\ntime.sleep(60)\n"
    settings = TrialSettings(image_uri="img", replica_count=2)
    spec = compile_sweep(tmp_path, [trial(0, settings, ["python", "-c", script], [])])
    result = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO()).run()
    job = next(t for t in result.tasks.values() if t.kind == "custom_job")
    assert job.state == "FAILED" and job.exit_code == 7
    assert job.end_time - job.start_time < 30
    collector = next(t for t in result.tasks.values() if t.kind == "container")
    assert collector.state == "SUCCEEDED"  # it runs however the trials ended
    assert result.state == "FAILED"


def test_upstream_failure_skips_tasks_that_need_success(tmp_path):
    settings = TrialSettings(image_uri="img")
    spec = compile_sweep(tmp_path, [trial(0, settings, ["python", "-c", "raise SystemExit(1)"], [])])
    collector = next(t for t in spec["root"]["dag"]["tasks"].values() if "triggerPolicy" in t)
    del collector["triggerPolicy"]
    result = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO()).run()
    states = sorted(t.state for t in result.tasks.values())
    assert states == ["FAILED", "SKIPPED"]


def test_collector_metrics_come_back_as_executor_output(tmp_path):
    settings = TrialSettings(image_uri="img")
    record = "{'status': 'COMPLETED', 'return_value': 0.25, 'run_id': 'run', 'number': 0}"
    write = f"import json, sys; json.dump({record}, open(sys.argv[1] + '/.vertex/result.json', 'w'))"
    spec = compile_sweep(tmp_path, [trial(0, settings, ["python", "-c", write], ["/gcs/b/run/0"])])
    result = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO()).run()
    assert result.state == "SUCCEEDED"
    collector = next(t for t in result.tasks.values() if t.kind == "container")
    metadata = collector.outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metadata["trial_0"] == 0.25
    summary = read_json(tmp_path / "gcs" / "b" / "run" / "summary.json")
    assert summary["trials"][0]["return_value"] == 0.25


def test_unknown_google_cloud_components_are_refused(tmp_path):
    spec = compile_sweep(tmp_path, [trial(0, TrialSettings(image_uri="img"), ["true"], [])])
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    bigquery = "google_cloud_pipeline_components.container.v1.bigquery.query_job.launcher"
    executor["container"]["command"] = ["python3", "-m", bigquery]
    from hydra_vertex_pipelines.pipeline_builder.local import UnsupportedPipeline

    with pytest.raises(UnsupportedPipeline, match="cannot emulate"):
        LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path)), tmp_path / "work"))


@pytest.mark.parametrize("package", ["local", "emulator"])
def test_each_package_exports_its_entry_points_and_loads_them_when_used(package):
    """Helpers start as `python -c "from ...local.fork_server import serve"`: the package's
    __init__ they import first must not import the runner (or the emulator's server)."""
    import ast
    import importlib
    import subprocess
    import sys

    name = f"hydra_vertex_pipelines.pipeline_builder.{package}"
    first = {"local": "fork_server", "emulator": "states"}[package]
    heavy = {"local": "runner", "emulator": "server"}[package]
    code = f"import sys, {name}.{first}; print(sorted(m for m in sys.modules if m.startswith('{name}.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"{name}.{heavy}'" not in loaded
    module = importlib.import_module(name)
    assert all(getattr(module, n) is not None for n in module.__all__)
    # What type checkers see (the TYPE_CHECKING imports) is what __getattr__ loads.
    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    relative = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1]
    typed = {a.name: node.module for node in relative for a in node.names}
    assert typed == module._EXPORTS


@pytest.mark.parametrize("asked, cpus, expected", [(8, 2, 8), (None, 2, 2), (1, 16, 1), (None, None, 1)])
def test_max_parallel_is_used_as_given_and_defaults_to_one_per_cpu(tmp_path, monkeypatch, asked, cpus, expected):
    """An explicit limit above the CPU count stands (I/O-bound trials gain from it), as the
    README says; unset, one task per CPU."""
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    settings = RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work", max_parallel=asked)
    assert settings.parallel_limit() == expected
    spec = compile_sweep(tmp_path, [trial(0, TrialSettings(), ["python", "-c", "pass"], [])], collector=False)
    assert LocalRunner(spec, settings, console=io.StringIO()).max_parallel == expected


def test_tasks_start_in_the_order_of_their_shown_names_numbers_as_numbers(tmp_path):
    """The spec's task map has no order worth keeping (kfp writes it sorted, by task name:
    trial 10 before trial 2); the runner plans trial 0 first and trial 10 after trial 9."""
    settings = TrialSettings(image_uri="img")
    spec = compile_sweep(tmp_path, [trial(n, settings, ["python", "-c", "pass"], []) for n in range(12)])
    tasks = spec["root"]["dag"]["tasks"]
    spec["root"]["dag"]["tasks"] = dict(reversed(list(tasks.items())))  # any order in, the same order out
    runner = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path)), tmp_path / "work"))
    shown = [t.display_name for t in runner.tasks.values()]
    assert shown[0] == "collect trials"
    assert [int(name.split()[0].rsplit("-", 1)[1]) for name in shown[1:]] == list(range(12))
