"""Recovery: a followed sweep's trials that failed for the cloud's reasons run again as new
PipelineJobs of the same sweep, against the emulator started from its command line with a
fault plan; an app's own error never runs again."""

import signal

import pytest

from conftest import APPS, read_json, run_app
from test_emulator_process import Emulator

FAULTS = APPS / "faults"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """Preempts every Spot CustomJob's first attempt 1 s after it starts; 1 s of grace."""
    started = Emulator(
        tmp_path_factory.mktemp("recovery") / "data", args=["--fault", "preempt,attempt=1,after=1", "--preemption-grace", "1"]
    )
    yield started
    started.stop(signal.SIGTERM)


def sweep(emulator: Emulator, sweep_dir, strategy: str, values: str, check: bool):
    return run_app(
        FAULTS / "app.py",
        [
            "-m",
            "hydra.launcher.mode=submit",
            f"hydra.launcher.api_endpoint={emulator.api}",
            "hydra.launcher.project=local",
            "hydra.launcher.pipeline_root=gs://recovery/runs",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.poll_interval=0.5",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]",
            f"hydra.launcher.trial.strategy={strategy}",
            "hydra.launcher.recovery.max_attempts=2",
            f"hydra.sweep.dir={sweep_dir}",
            "+sleep=4",
            f"x={values}",
        ],
        check=check,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )


@pytest.mark.slow  # the emulator's command line, a sweep in a subprocess
def test_preempted_spot_trials_run_again_and_complete_in_a_second_pipeline_job(emulator, tmp_path):
    proc = sweep(emulator, tmp_path, "SPOT", "1,2,3", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (
        "Recovery: attempt 2 of 2 for 3 trials" in proc.stdout
        and "trial 0 (preempted), 1 (preempted), 2 (preempted)" in proc.stdout
    )
    summary = read_json(tmp_path / "summary.json")
    assert summary["counts"] == {"COMPLETED": 3}
    assert [t["return_value"] for t in summary["trials"]] == [1.0, 2.0, 3.0]
    for trial in summary["trials"]:
        assert [(a["attempt"], a["status"], (a["failure"] or {}).get("kind")) for a in trial["attempts"]] == [
            (1, "MISSING", "preempted"),  # preempted: no result of its own
            (2, "COMPLETED", None),
        ]
    jobs = read_json(tmp_path / "manifest.json")["vertex"]["jobs"]
    assert len(jobs) == 2 and len(set(jobs)) == 2
    assert (tmp_path / "recovery" / "attempt-2" / "pipeline.yaml").exists()


@pytest.mark.slow
def test_an_app_error_never_runs_again(emulator, tmp_path):
    proc = sweep(emulator, tmp_path, "STANDARD", "raise,5", check=False)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "Recovery:" not in proc.stdout
    summary = read_json(tmp_path / "summary.json")
    assert summary["counts"] == {"COMPLETED": 1, "FAILED": 1}
    assert [len(t["attempts"]) for t in summary["trials"]] == [1, 1]
    assert summary["trials"][0]["failure"]["kind"] == "app"
    assert len(read_json(tmp_path / "manifest.json")["vertex"]["jobs"]) == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["hydra.launcher.recovery.kinds=[preempted,app]"],
            "hydra.launcher.recovery.kinds='app' is not accepted: .*app is never recovered",
        ),
        (
            ["hydra.launcher.recovery.kinds=[stockout]"],
            "hydra.launcher.recovery.kinds='stockout' is not accepted: failure kinds among preempted",
        ),
        (["hydra.launcher.recovery.max_attempts=0"], "hydra.launcher.recovery.max_attempts=0 is not accepted: an integer >= 1"),
        (
            ["hydra.launcher.recovery.quota_backoff=-1"],
            "hydra.launcher.recovery.quota_backoff=-1.0 is not accepted: a number of seconds >= 0",
        ),
        (
            ["hydra.launcher.recovery.max_attempts=2", "hydra.launcher.mode=compile"],
            "max_attempts=2 is not accepted: 1 unless mode=submit and wait=true",
        ),
    ],
)
def test_bad_recovery_settings_are_refused_naming_the_field(tmp_path, overrides, message):
    from conftest import launch_in_process
    from hydra_plugins.vertex_pipelines_launcher._errors import LauncherConfigError

    base = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        "hydra.launcher.trial.image_uri=img",
    ]
    with pytest.raises(LauncherConfigError, match=message):
        launch_in_process(FAULTS / "conf", [*base, *overrides], [["x=1"]])
