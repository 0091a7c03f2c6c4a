"""With `hydra.launcher.experiment`, each trial is a Vertex AI Experiments run: read back
through aiplatform's own `get_experiment_df` and `ExperimentRun.list`, against the
emulator started from its command line."""

import math
import signal

import pytest

from conftest import APPS, read_json, run_app
from hydra_vertex_pipelines.components.experiments import (
    MAX_RUN_ID,
    ExperimentTarget,
    log_trials,
    longest_experiment,
    metrics_of,
    params_of,
    run_name,
    trial_runs,
)
from hydra_vertex_pipelines.pipeline_builder.emulator.metadata import MetadataService
from test_emulator_process import Emulator

FAULTS = APPS / "faults"
ENDED = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")
STORE = "projects/p/locations/l/metadataStores/default"


# ---- the mapping: names, parameters, metrics, state -------------------------------------


def test_a_run_is_named_from_the_run_id_and_trial_number():
    assert run_name("train-20261205-012345-abcdef", 3, "sweep-exp") == "train-20261205-012345-abcdef-t3"
    assert run_name("train-20261205-012345-abcdef", 3, "sweep-exp") == run_name("train-20261205-012345-abcdef", 3, "sweep-exp")


def test_a_long_run_id_is_cut_to_vertex_limit_and_keeps_runs_apart():
    experiment = "e" * 70
    first, second = run_name("a" * 60 + "-one", 12, experiment), run_name("a" * 60 + "-two", 12, experiment)
    assert len(f"{experiment}-{first}") <= MAX_RUN_ID and first.endswith("-t12") and first != second
    assert all(c.islower() or c.isdigit() or c == "-" for c in first)


def test_an_experiment_name_that_leaves_no_room_is_an_error_in_the_summary_not_a_crash():
    rows = [{"number": 0, "status": "COMPLETED", "overrides": ["x=1"], "return_value": 1.0}]
    report = log_trials(rows, "run-1", ExperimentTarget("e" * 128))
    assert report["name"] == "e" * 128 and report["runs"] == 0
    assert report["error"].startswith("ValueError: experiment name")


def test_the_longest_experiment_name_leaves_room_for_every_runs_name():
    long_run_id = "r" * 63  # the longest run id
    for last in (0, 9, 10, 12345):
        longest = longest_experiment(last)
        assert len(f"{'e' * longest}-{run_name(long_run_id, last, 'e' * longest)}") <= MAX_RUN_ID
        with pytest.raises(ValueError):
            run_name(long_run_id, last, "e" * (longest + 1))


def test_a_submission_whose_experiment_name_is_too_long_is_refused_before_anything_is_sent(tmp_path):
    from conftest import launch_in_process
    from hydra_plugins.vertex_pipelines_launcher._errors import LauncherConfigError

    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=submit",
        "hydra.launcher.project=p",
        "hydra.launcher.api_endpoint=http://127.0.0.1:9",  # nothing listens: a request would fail
        "hydra.launcher.pipeline_root=gs://bkt/root",
        "hydra.launcher.trial.image_uri=img",
        f"hydra.launcher.experiment={'e' * 108}",
    ]
    with pytest.raises(LauncherConfigError, match="hydra.launcher.experiment='e+' is not accepted: a name of at most 107"):
        launch_in_process(FAULTS / "conf", overrides, [["x=1"]])
    assert not (tmp_path / "pipeline.yaml").exists()


def test_overrides_are_parameters_with_flat_keys_and_numbers_as_numbers():
    overrides = ["x=1", "model.lr=0.1", "+opt.name=adam", "hydra.job.chdir=true", "~dropout", "big=1e3", "n=nan", "l=[1,2]"]
    assert params_of(overrides) == {
        "x": 1,
        "model.lr": 0.1,
        "opt.name": "adam",
        "dropout": "~",
        "big": 1000.0,
        "n": "nan",
        "l": "[1,2]",
    }


def test_numeric_results_are_metrics_nested_keys_joined():
    assert metrics_of(0.5) == {"value": 0.5}
    assert metrics_of({"loss": 1, "ok": True, "val": {"loss": 2.0, "nan": float("nan")}, "note": "x"}) == {
        "loss": 1.0,
        "val.loss": 2.0,
    }
    assert metrics_of("text") == {} and metrics_of(None) == {}


def test_a_trial_that_did_not_complete_is_a_failed_run_without_metrics():
    rows = [
        {"number": 0, "status": "COMPLETED", "overrides": ["x=1"], "return_value": 1.0},
        {"number": 1, "status": "FAILED", "overrides": ["x=raise"], "return_value": None},
        {"number": 2, "status": "MISSING", "overrides": ["x=3"], "return_value": None},
    ]
    runs = trial_runs(rows, "run-1", "exp")
    assert [(r.name, r.completed, r.metrics) for r in runs] == [
        ("run-1-t0", True, {"value": 1.0}),
        ("run-1-t1", False, {}),
        ("run-1-t2", False, {}),
    ]
    assert runs[1].params == {"x": "raise"}


def test_the_target_travels_to_the_collector_as_json():
    target = ExperimentTarget("exp", "proj", "europe-west4", "http://127.0.0.1:1")
    assert ExperimentTarget.from_json(target.to_json()) == target


# ---- the emulator's Metadata: filters as aiplatform writes them -------------------------


def test_the_emulator_lists_contexts_by_schema_and_parent_and_refuses_filters_it_does_not_know(tmp_path):
    service = MetadataService(tmp_path / "metadata.json")
    service.create(STORE, "exp", {"schemaTitle": "system.Experiment"})
    service.create(STORE, "exp-r1", {"schemaTitle": "system.ExperimentRun"})
    service.create(STORE, "other-r1", {"schemaTitle": "system.ExperimentRun"})
    service.create(STORE, "job", {"schemaTitle": "system.PipelineRun"})
    exp = f"{STORE}/contexts/exp"
    kids = {"childContexts": [f"{STORE}/contexts/exp-r1", f"{STORE}/contexts/job"]}
    service.handle("POST", f"/v1/{exp}:addContextChildren", {}, kids)

    def listed(text: str):
        code, reply = service.handle("GET", f"/v1/{STORE}/contexts", {"filter": [text]}, None)
        return code, sorted(c["name"].rsplit("/", 1)[1] for c in reply.get("contexts", []))

    assert listed(f'schema_title="system.ExperimentRun" AND parent_contexts:"{exp}"') == (200, ["exp-r1"])
    both = f'(schema_title="system.ExperimentRun" OR schema_title="system.PipelineRun") AND parent_contexts:"{exp}"'
    assert listed(both) == (200, ["exp-r1", "job"])
    assert listed('schema_title="system.ExperimentRun"') == (200, ["exp-r1", "other-r1"])
    assert listed('create_time>"2020-01-01"')[0] == 400
    code, reply = service.handle("GET", f"/v1/{STORE}/executions", {"filter": [f'in_context("{exp}")']}, None)
    assert (code, reply) == (200, {"executions": []})


def test_a_runs_parameters_metrics_and_state_survive_a_restart(tmp_path):
    first = MetadataService(tmp_path / "metadata.json")
    first.create(STORE, "exp-r1", {"schemaTitle": "system.ExperimentRun", "metadata": {"_state": "RUNNING"}})
    logged = {"metadata": {"_params": {"x": 1}, "_metrics": {"value": 2.0}, "_state": "COMPLETE"}}
    assert first.handle("PATCH", f"/v1/{STORE}/contexts/exp-r1", {}, logged)[0] == 200
    again = MetadataService(tmp_path / "metadata.json")
    assert again.contexts[f"{STORE}/contexts/exp-r1"]["metadata"] == logged["metadata"]


def test_compile_mode_gives_the_collector_no_experiment(tmp_path):
    """Only a submitted run logs experiment runs: a compiled pipeline's collector has none."""
    import yaml

    from conftest import launch_in_process

    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        "hydra.launcher.trial.image_uri=img",
        "hydra.launcher.experiment=sweep-exp",
    ]
    launch_in_process(FAULTS / "conf", overrides, [["x=1"]])
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    collector = next(t for name, t in spec["root"]["dag"]["tasks"].items() if "collect" in name)
    assert collector["inputs"]["parameters"]["experiment"] == {"runtimeValue": {"constant": ""}}


# ---- a sweep against the emulator's command line, read back with aiplatform -------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = Emulator(tmp_path_factory.mktemp("experiments") / "data")
    yield started
    started.stop(signal.SIGTERM)


def _sweep(emulator: Emulator, sweep_dir, *extra: str, values: str = "1,2,raise", experiment: str = "sweep-exp"):
    return run_app(
        FAULTS / "app.py",
        [
            "-m",
            "hydra.launcher.mode=submit",
            f"hydra.launcher.api_endpoint={emulator.api}",
            "hydra.launcher.project=local",
            "hydra.launcher.pipeline_root=gs://experiments/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.poll_interval=0.5",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
            f"hydra.launcher.experiment={experiment}",
            f"hydra.sweep.dir={sweep_dir}",
            *extra,
            f"x={values}",
        ],
        check=False,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )


@pytest.fixture(scope="module")
def swept(emulator, tmp_path_factory):
    """One sweep of three trials (the last fails), then its resume."""
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    runs = [_sweep(emulator, first), _sweep(emulator, second, f"hydra.launcher.resume={first}")]
    return first, second, runs


def _runs(emulator: Emulator, experiment: str = "sweep-exp"):
    """The experiment's rows as aiplatform reads them, by run name, and its runs."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(
        project="local",
        location="us-central1",
        api_endpoint=emulator.api,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    frame = aiplatform.get_experiment_df(experiment)
    return {row["run_name"]: row for row in frame.to_dict("records")}, aiplatform.ExperimentRun.list(experiment=experiment)


@pytest.mark.slow  # the emulator's command line, two sweeps in subprocesses
def test_each_trial_is_an_experiment_run_with_its_overrides_results_and_state(emulator, swept):
    first, _, (proc, _) = swept
    assert proc.returncode == 1, proc.stdout[-3000:]  # one trial failed
    run_id = read_json(first / "manifest.json")["run_id"]
    summary = read_json(first / "summary.json")
    assert summary["experiment"] == {"name": "sweep-exp", "runs": 3}
    rows, listed = _runs(emulator)
    trial_rows = {name: row for name, row in rows.items() if row["run_type"] == "system.ExperimentRun"}
    assert sorted(trial_rows) == [f"{run_id}-t0", f"{run_id}-t1", f"{run_id}-t2"]
    got = [(row["state"], row["param.x"], row.get("metric.value")) for _, row in sorted(trial_rows.items())]
    assert got[:2] == [("COMPLETE", 1, 1.0), ("COMPLETE", 2, 2.0)]
    assert got[2][:2] == ("FAILED", "raise") and math.isnan(got[2][2])  # no metric: the frame's NaN
    assert run_id in rows and rows[run_id]["run_type"] == "system.PipelineRun"  # the PipelineJob, as before
    by_name = {run.name: run for run in listed}
    assert by_name[f"{run_id}-t1"].get_params() == {"x": 2} and by_name[f"{run_id}-t1"].get_metrics() == {"value": 2.0}
    assert by_name[f"{run_id}-t2"].get_state() == "FAILED"


@pytest.mark.slow
def test_a_resumed_sweep_updates_its_runs_instead_of_failing_on_them(emulator, swept):
    first, second, (_, proc) = swept
    assert proc.returncode == 1, proc.stdout[-3000:]  # the failing trial fails again
    assert read_json(second / "summary.json")["experiment"] == {"name": "sweep-exp", "runs": 3}
    run_id = read_json(first / "manifest.json")["run_id"]
    rows, listed = _runs(emulator)
    names = sorted(name for name, row in rows.items() if row["run_type"] == "system.ExperimentRun")
    assert names == [f"{run_id}-t0", f"{run_id}-t1", f"{run_id}-t2"]
    assert sorted(run.name for run in listed) == names


@pytest.mark.slow
def test_a_run_not_followed_logs_its_trials_too(emulator, tmp_path):
    """wait=false: the launcher returns at submission, and the collector still logs the runs."""
    from conftest import wait_for

    proc = _sweep(emulator, tmp_path, "hydra.launcher.wait=false", values="1,2", experiment="nowait-exp")
    assert proc.returncode == 0, proc.stdout[-3000:]
    manifest = read_json(tmp_path / "manifest.json")
    job = "/v1/" + manifest["vertex"]["resource_name"]
    wait_for(lambda: emulator.request(job)["state"] in ENDED, timeout=180, what=f"{job} to end")
    _, listed = _runs(emulator, "nowait-exp")
    run_id = manifest["run_id"]
    assert sorted((r.name, r.get_state(), r.get_metrics()["value"]) for r in listed) == [
        (f"{run_id}-t0", "COMPLETE", 1.0),
        (f"{run_id}-t1", "COMPLETE", 2.0),
    ]
