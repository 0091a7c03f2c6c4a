"""Recovery: a followed sweep's trials that failed for the cloud's reasons run again as new
PipelineJobs of the same sweep, against the emulator started from its command line with a
fault plan; an app's own error never runs again."""

import signal
import subprocess

import pytest

from conftest import APPS, CLI, read_json, run_app
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
            *emulator.faults_app_submit("recovery"),
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
    assert read_json(tmp_path / "recovery" / "attempt-2" / "summary.json")["counts"] == {"COMPLETED": 3}
    status = subprocess.run([CLI, "status", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.startswith(f"{jobs[1]}: PIPELINE_STATE_SUCCEEDED"), status


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
            "max_attempts=2 is not accepted: 1 unless mode=submit: the launcher .wait=true. or "
            "`hydra-vertex-pipelines recover` .wait=false.",
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


def test_an_attempt_holds_the_completed_trials_and_the_recovered_ones_labelled_and_no_other():
    from pathlib import Path

    from hydra_plugins.vertex_pipelines_launcher._choices import Mode
    from hydra_plugins.vertex_pipelines_launcher._planning import Batch
    from hydra_plugins.vertex_pipelines_launcher._recovery import attempt_batch
    from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source
    from hydra_vertex_pipelines.pipeline_builder.recovery import RERUN_LABEL, RecoverySettings, attempt_sweep, to_recover
    from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

    failures = {
        1: Failure(FailureKind.PREEMPTED, Source.CUSTOM_JOB),
        2: Failure(FailureKind.APP, Source.RECORD),
        3: Failure(FailureKind.QUOTA, Source.LAUNCHER),
        4: Failure(FailureKind.TIMEOUT, Source.CUSTOM_JOB),
    }
    settings = RecoverySettings(3, frozenset({FailureKind.PREEMPTED, FailureKind.QUOTA}), 0.0)
    assert set(to_recover(failures, {0: 1, 1: 2, 2: 1, 3: 3, 4: 1}, settings)) == {1}  # trial 3 has no attempt left
    assert set(to_recover(failures, {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}, settings)) == {1, 3}  # never app, nor a kind not asked

    trials = tuple(TrialSpec(n, f"run_{n}", (f"x={n}",), f"t-{n}", f"gs://b/r/{n}", f"/gcs/b/r/{n}", ()) for n in range(5))
    sweep = SweepSpec("app", "run-1", "gs://b", "gs://b/r", trials, "img")
    kinds = {1: [FailureKind.PREEMPTED], 3: [FailureKind.QUOTA]}
    second_sweep = attempt_sweep(sweep, kinds, completed=[0], attempt=2)
    assert [t.number for t in second_sweep.trials] == [0, 1, 3]  # 2 (app) and 4 (timeout) are left out
    assert [t.labels.get(RERUN_LABEL) for t in second_sweep.trials] == [None, "attempt-2", "attempt-2"]
    batch = Batch(Mode.SUBMIT, sweep, Path("/tmp/sweep"), 0, "/tmp", None, False, (), job_id="run-1")
    second = attempt_batch(batch, 2, second_sweep)
    assert second.sweep.run_id == "run-1" and second.job_id == "run-1-attempt-2"  # the same folders, a new PipelineJob
    assert second.sweep_dir == Path("/tmp/sweep/recovery/attempt-2")


def test_a_trial_that_keeps_failing_ends_failed_with_every_attempt_listed_and_the_others_keep_theirs():
    """The attempts loop, each PipelineJob's outcome given as Vertex would leave it: trial 0
    completes, trial 1 is out of capacity every time, trial 2 raises (never run again)."""
    from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source
    from hydra_vertex_pipelines.pipeline_builder.recovery import Recovery, RecoverySettings, Round
    from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

    capacity = Failure(FailureKind.CAPACITY, Source.CUSTOM_JOB, 8, "Resources are insufficient in region")
    app = Failure(FailureKind.APP, Source.RECORD, None, "ValueError: bad x")

    def row(n: int, status: str, failure) -> dict:
        attempt = {"attempt": 1, "status": status, "failure": failure and failure.to_json()}
        return {"number": n, "status": status, "failure": failure and failure.to_json(), "attempts": [attempt]}

    trials = tuple(TrialSpec(n, f"run_{n}", (f"x={n}",), f"t-{n}", f"gs://b/r/{n}", f"/gcs/b/r/{n}", ()) for n in range(3))
    sweep = SweepSpec("app", "run-1", "gs://b", "gs://b/r", trials, "img")
    first_rows = [row(0, "COMPLETED", None), row(1, "MISSING", capacity), row(2, "FAILED", app)]
    first = Round(
        {0: "done", 1: "lost", 2: "raised"}, frozenset({0}), {"trials": first_rows, "counts": {}}, {1: capacity, 2: app}, "jobs/1"
    )
    sent = []

    def attempt(number: int, attempt_sweep: SweepSpec) -> Round:
        numbers = [t.number for t in attempt_sweep.trials]
        sent.append((number, numbers))
        rows = [row(0, "COMPLETED", None), row(1, "MISSING", capacity)]
        return Round(
            {0: "done", 1: f"lost {number}"}, frozenset({0}), {"trials": rows, "counts": {}}, {1: capacity}, f"jobs/{number}"
        )

    recovery = Recovery(sweep, RecoverySettings(3, frozenset({FailureKind.CAPACITY}), 0.0), first)
    recovery.run(attempt)
    assert sent == [(2, [0, 1]), (3, [0, 1])]  # two more attempts; trial 2 (app) in none
    assert recovery.ordered() == ["done", "lost 3", "raised"]  # each trial's latest result, whatever it is
    assert recovery.kinds[1] == [FailureKind.CAPACITY] * 3  # what a fallback would be chosen by
    summary = recovery.final_summary()
    assert summary["counts"] == {"COMPLETED": 1, "MISSING": 1, "FAILED": 1}
    attempts = {t["number"]: [(a["attempt"], (a["failure"] or {}).get("kind")) for a in t["attempts"]] for t in summary["trials"]}
    assert attempts == {0: [(1, None)], 1: [(1, "capacity"), (2, "capacity"), (3, "capacity")], 2: [(1, "app")]}
    assert recovery.jobs == ["jobs/1", "jobs/2", "jobs/3"]
