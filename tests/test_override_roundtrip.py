"""The config a trial's compiled command composes equals what Hydra's basic launcher composes."""

import pytest

from conftest import APPS, constant, load_pipeline, read_json, run_app, run_trial_command, trial_tasks

pytestmark = pytest.mark.slow  # sweeps in subprocesses, both launchers

APP_DIR = APPS / "roundtrip"
APP = APP_DIR / "app.py"

OVERRIDES = [
    "db=mysql,postgres",
    "+extra='hello world'",
    "~to_remove",
    "msg=\"it's, a=b\"",
    "+price='$5 [x] {y} (z)'",
    "+uni='héllo wörld 日本'",
    "+quoted_interp='lr is ${lr}'",
    "+ref=${lr}",
    "+lst=[1,2,'a b',{k: v}]",
    "+esc='\\${lr}'",
    "nested.a=2",
    "+dollar=a$b",
    "+empty=''",
    "+colon='a: b'",
    "lr=0.5",
]


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roundtrip")
    run_app(APP, ["-m", "hydra/launcher=basic", f"hydra.sweep.dir={tmp / 'basic'}", *OVERRIDES], cwd=APP_DIR)
    run_app(
        APP,
        [
            "-m",
            "hydra/launcher=vertex_pipelines",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://bucket/root",
            "hydra.launcher.trial.image_uri=image",
            f"hydra.sweep.dir={tmp / 'compiled'}",
            *OVERRIDES,
        ],
        cwd=APP_DIR,
    )
    manifest = read_json(tmp / "compiled" / "manifest.json")
    tasks = trial_tasks(load_pipeline(tmp / "compiled" / "pipeline.yaml"))
    by_name = {constant(t, "display_name"): t for t in tasks.values()}
    results = {}
    for trial in manifest["trials"]:
        (pool,) = constant(by_name[trial["display_name"]], "worker_pool_specs")
        run_trial_command(pool["container_spec"]["command"], pool["container_spec"]["args"], tmp / "gcs", APP_DIR)
        trial_dir = tmp / "gcs" / trial["output_dir"][len("/gcs/") :]
        results[trial["number"]] = (read_json(tmp / "basic" / str(trial["number"]) / "cfg.json"), trial_dir)
    return results


def test_two_jobs_were_compared(both_ways):
    assert sorted(both_ways) == [0, 1]
    assert {basic["choices"]["db"] for basic, _ in both_ways.values()} == {"mysql", "postgres"}


@pytest.mark.parametrize("num", [0, 1])
def test_trial_composes_the_same_config(both_ways, num):
    basic, trial_dir = both_ways[num]
    trial = read_json(trial_dir / "cfg.json")
    assert trial["raw"] == basic["raw"]
    assert trial["resolved"] == basic["resolved"]
    assert trial["task_overrides"] == basic["task_overrides"]
    assert trial["choices"]["db"] == basic["choices"]["db"]


def test_special_values_arrived_intact(both_ways):
    basic, trial_dir = both_ways[0]
    resolved = read_json(trial_dir / "cfg.json")["resolved"]
    assert resolved["extra"] == "hello world"
    assert "to_remove" not in resolved
    assert resolved["msg"] == "it's, a=b"
    assert resolved["price"] == "$5 [x] {y} (z)"
    assert resolved["uni"] == "héllo wörld 日本"
    assert resolved["quoted_interp"] == "lr is 0.5"
    assert resolved["ref"] == 0.5
    assert resolved["lst"] == [1, 2, "a b", {"k": "v"}]
    assert resolved["esc"] == "${lr}"
    assert resolved["nested"] == {"a": 2, "b": 0.5}
    assert resolved["dollar"] == "a$b"
    assert resolved["empty"] == ""
    assert resolved["colon"] == "a: b"


def test_trial_wrote_its_result(both_ways):
    _, trial_dir = both_ways[0]
    result = read_json(trial_dir / ".vertex" / "result.json")
    assert result["status"] == "COMPLETED"
    assert result["return_value"] == 0.5


@pytest.mark.parametrize("fresh", ["true", "false"])
def test_local_mode_composes_the_same_configs(both_ways, tmp_path, fresh):
    """Forked from the preloading server or started fresh, a trial sees what Hydra's basic launcher gives."""
    run_app(
        APP,
        [
            "-m",
            "hydra/launcher=vertex_pipelines",
            "hydra.launcher.mode=local",
            f"hydra.launcher.fresh_interpreters={fresh}",
            f"hydra.sweep.dir={tmp_path}",
            *OVERRIDES,
        ],
        cwd=APP_DIR,
    )
    for num, (basic, _) in both_ways.items():
        local = read_json(tmp_path / str(num) / "cfg.json")
        assert local["raw"] == basic["raw"]
        assert local["resolved"] == basic["resolved"]
        assert local["task_overrides"] == basic["task_overrides"]
        assert read_json(tmp_path / str(num) / ".vertex" / "result.json")["return_value"] == 0.5
