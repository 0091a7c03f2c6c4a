"""Per-trial settings come from each job's composed config."""

from pathlib import Path

from conftest import APPS, constant, load_pipeline, read_json, run_app, run_trial_command, trial_tasks

APP_DIR = APPS / "per_trial"
APP = APP_DIR / "app.py"


def test_each_trial_gets_its_own_machine(tmp_path):
    run_app(
        APP, ["-m", "hydra.launcher.mode=compile", f"hydra.sweep.dir={tmp_path}", "model=small,large", "lr=0.1,0.2"], cwd=APP_DIR
    )
    manifest = read_json(tmp_path / "manifest.json")
    tasks = {constant(t, "display_name"): t for t in trial_tasks(load_pipeline(tmp_path / "pipeline.yaml")).values()}
    assert len(tasks) == 4
    for trial in manifest["trials"]:
        task = tasks[trial["display_name"]]
        (pool,) = constant(task, "worker_pool_specs")
        if "model=large" in trial["overrides"]:
            assert pool["machine_spec"] == {
                "machine_type": "a2-highgpu-1g",
                "accelerator_type": "NVIDIA_TESLA_A100",
                "accelerator_count": 1,
            }
            assert constant(task, "labels")["model"] == "large"
        else:
            assert pool["machine_spec"] == {"machine_type": "n1-standard-4"}
            assert constant(task, "labels")["model"] == "small"


def test_custom_sweep_subdir_reaches_the_trial(tmp_path):
    run_app(
        APP,
        [
            "-m",
            "hydra.launcher.mode=compile",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "hydra.sweep.subdir=${hydra.job.override_dirname}",
            "model=small",
            "lr=0.1,0.2",
        ],
        cwd=APP_DIR,
    )
    manifest = read_json(tmp_path / "sweep" / "manifest.json")
    first = manifest["trials"][0]
    assert first["output_uri"].endswith("/lr=0.1,model=small")
    tasks = {constant(t, "display_name"): t for t in trial_tasks(load_pipeline(tmp_path / "sweep" / "pipeline.yaml")).values()}
    (pool,) = constant(tasks[first["display_name"]], "worker_pool_specs")
    run_trial_command(pool["container_spec"]["command"], pool["container_spec"]["args"], tmp_path / "gcs", APP_DIR)
    result = read_json(Path(f"{tmp_path}/gcs/{first['output_dir'][len('/gcs/') :]}") / ".vertex" / "result.json")
    assert result["return_value"] == "small:0.1"


def test_a_bad_setting_in_one_trial_names_that_trial(tmp_path):
    proc = run_app(
        APP, ["-m", "hydra.launcher.mode=compile", f"hydra.sweep.dir={tmp_path}", "model=small,broken"], cwd=APP_DIR, check=False
    )
    assert proc.returncode == 1
    assert "hydra.launcher.trial.accelerator_type='nvidia-t4' (trial 1: model=broken) is not accepted" in proc.stderr
    assert "Did you mean NVIDIA_TESLA_T4?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pipeline.yaml").exists()
