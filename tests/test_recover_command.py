"""`hydra-vertex-pipelines recover SWEEP_DIR`: the launcher's recovery for a sweep submitted
with wait=false, from the sweep dir alone, against the emulator started from its command
line with a fault plan; and the manifest's record of the sweep that it builds attempts from."""

import json
import os
import signal
import subprocess

import pytest

from conftest import APPS, CLI, read_json, run_app
from test_emulator_process import Emulator

FAULTS = APPS / "faults"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """Preempts every Spot CustomJob's first attempt 1 s after it starts, and the trial
    x=77's first two; 1 s of grace."""
    faults = ["--fault", "preempt,attempt=1,after=1", "--fault", "preempt,display_name=x.77,attempt=1|2,after=1"]
    started = Emulator(tmp_path_factory.mktemp("recover") / "data", args=[*faults, "--preemption-grace", "1"])
    yield started
    started.stop(signal.SIGTERM)


def submit_without_waiting(
    emulator: Emulator, sweep_dir, strategy: str, values: str, wait: bool = False
) -> subprocess.CompletedProcess:
    return run_app(
        FAULTS / "app.py",
        [
            *emulator.faults_app_submit("recover"),
            f"hydra.launcher.wait={str(wait).lower()}",
            f"hydra.launcher.trial.strategy={strategy}",
            "hydra.launcher.recovery.max_attempts=2",
            f"hydra.sweep.dir={sweep_dir}",
            "+sleep=4",
            f"x={values}",
        ],
        check=False,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )


def recover(emulator: Emulator, sweep_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "recover", str(sweep_dir), "--poll-interval", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STORAGE_EMULATOR_HOST": emulator.gcs_url},
    )


@pytest.fixture(scope="module")
def spot_sweep(emulator, tmp_path_factory):
    """A Spot sweep submitted with wait=false (every trial preempted), then recovered."""
    sweep_dir = tmp_path_factory.mktemp("spot")
    submitted = submit_without_waiting(emulator, sweep_dir, "SPOT", "1,2,3")
    return sweep_dir, submitted, recover(emulator, sweep_dir)


@pytest.mark.slow  # the emulator's command line, a sweep and the command in subprocesses
def test_recover_finishes_a_sweep_submitted_with_wait_false(spot_sweep):
    sweep_dir, submitted, proc = spot_sweep
    assert submitted.returncode == 0, submitted.stdout[-3000:]
    assert f"hydra-vertex-pipelines recover {sweep_dir}" in submitted.stdout + submitted.stderr
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Recovery: attempt 2 of 2 for 3 trials" in proc.stderr
    assert "trial 0 (preempted), 1 (preempted), 2 (preempted)" in proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("  #")]
    assert [(w[0], w[1], w[-3], w[-2]) for w in lines] == [
        ("#0", "COMPLETED", "1.0", "(2"),
        ("#1", "COMPLETED", "2.0", "(2"),
        ("#2", "COMPLETED", "3.0", "(2"),
    ]
    summary = read_json(sweep_dir / "summary.json")
    assert summary["counts"] == {"COMPLETED": 3}
    for trial in summary["trials"]:
        assert [(a["attempt"], a["status"], (a["failure"] or {}).get("kind")) for a in trial["attempts"]] == [
            (1, "MISSING", "preempted"),
            (2, "COMPLETED", None),
        ]
    assert (sweep_dir / "report.html").exists()
    jobs = read_json(sweep_dir / "manifest.json")["vertex"]["jobs"]
    assert len(jobs) == 2 and jobs[1].endswith("-attempt-2")
    assert read_json(sweep_dir / "recovery" / "attempt-2" / "manifest.json")["vertex"]["resource_name"] == jobs[1]
    status = subprocess.run([CLI, "status", str(sweep_dir)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.startswith(f"{jobs[1]}: PIPELINE_STATE_SUCCEEDED"), status


@pytest.mark.slow
def test_recover_again_finds_nothing_to_recover_and_keeps_every_attempt(emulator, spot_sweep):
    sweep_dir, _, _ = spot_sweep
    proc = recover(emulator, sweep_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nothing to recover" in proc.stdout and "over 2 PipelineJobs" in proc.stdout
    assert len(read_json(sweep_dir / "manifest.json")["vertex"]["jobs"]) == 2
    summary = read_json(sweep_dir / "summary.json")
    assert summary["counts"] == {"COMPLETED": 3}
    assert [len(t["attempts"]) for t in summary["trials"]] == [2, 2, 2]


@pytest.mark.slow
def test_recover_never_runs_an_app_error_again(emulator, tmp_path):
    submit_without_waiting(emulator, tmp_path, "STANDARD", "raise,5")
    proc = recover(emulator, tmp_path, "--max-attempts", "3")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nothing to recover" in proc.stdout and "Recovery:" not in proc.stderr
    assert "[app] ValueError: bad x" in proc.stdout
    summary = read_json(tmp_path / "summary.json")
    assert summary["counts"] == {"COMPLETED": 1, "FAILED": 1}
    assert summary["trials"][0]["failure"]["kind"] == "app"
    assert len(read_json(tmp_path / "manifest.json")["vertex"]["jobs"]) == 1


@pytest.mark.slow
def test_recover_goes_on_from_the_attempts_the_launcher_made(emulator, tmp_path):
    """The launcher (wait=true, 2 attempts) gives up on x=77, preempted twice; recover with
    a third attempt counts the two made from the sweep dir and completes it."""
    launched = submit_without_waiting(emulator, tmp_path, "SPOT", "5,77", wait=True)
    assert launched.returncode == 1, launched.stdout[-3000:]
    proc = recover(emulator, tmp_path, "--max-attempts", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Recovery: attempt 3 of 3 for 1 trials" in proc.stderr and "trial 1 (preempted)" in proc.stderr
    summary = read_json(tmp_path / "summary.json")
    assert [t["return_value"] for t in summary["trials"]] == [5.0, 77.0]
    assert [[a["attempt"] for a in t["attempts"]] for t in summary["trials"]] == [[1, 2], [1, 2, 3]]
    jobs = read_json(tmp_path / "manifest.json")["vertex"]["jobs"]
    assert [j.rsplit("-", 2)[-2:] for j in jobs[1:]] == [["attempt", "2"], ["attempt", "3"]]


def test_an_older_manifest_is_refused_saying_what_it_lacks(tmp_path):
    manifest = {
        "format_version": 1,
        "run_id": "app-1",
        "mode": "submit",
        "trials": [],
        "vertex": {"resource_name": "projects/p/locations/l/pipelineJobs/app-1", "project": "p", "location": "l"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run([CLI, "recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "lacks what recovery needs (sweep, job_settings, job_id, recovery)" in proc.stderr
    assert f"hydra.launcher.resume={tmp_path}" in proc.stderr


def test_recover_refuses_a_sweep_that_was_not_submitted(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 1, "mode": "compile", "trials": []}))
    proc = subprocess.run([CLI, "recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "holds no manifest of a submitted run" in proc.stderr


def test_the_sweep_spec_and_its_trials_round_trip_through_the_manifest_json():
    from hydra_vertex_pipelines.components import strict_json
    from hydra_vertex_pipelines.components.failures import FailureKind
    from hydra_vertex_pipelines.pipeline_builder.recovery import RecoverySettings
    from hydra_vertex_pipelines.pipeline_builder.spec.manifest import JobSettings
    from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
    from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec, worker_pool_specs

    pools = worker_pool_specs(
        TrialSettings(image_uri="img", machine_type="n1-standard-8", env={"A": "1"}, replica_count=2), ["python"], ["x=1"]
    )
    trial = TrialSpec(
        3,
        "run_3",
        ("x=1", "y='a b'"),
        "app-3",
        "gs://b/r/3",
        "/gcs/b/r/3",
        pools,
        labels={"team": "a"},
        job_settings={"strategy": "SPOT", "timeout": "3600s"},
        retry={"num_retries": 2},
        fallbacks=({"settings": {"strategy": "STANDARD"}, "worker_pool_specs": [dict(p) for p in pools], "job_settings": {}},),
    )
    sweep = SweepSpec(
        "app", "run-1", "gs://b", "gs://b/r", (trial,), "img", tag="-2", fan_out="parallel_for", parallelism=5, cost_rates="{}"
    )
    back = SweepSpec.from_dict(strict_json.loads(strict_json.dumps(sweep.to_dict())))
    assert back == sweep and back.trials[0] == trial and isinstance(back.trials[0].worker_pool_specs, tuple)
    assert TrialSpec.from_dict(trial.to_dict()) == trial and isinstance(back.trials[0].fallbacks, tuple)

    job = JobSettings("run", {"hydra-run": "run-1"}, True, "slow", network="n", reserved_ip_ranges=("r1",))
    assert JobSettings.from_json(json.loads(json.dumps(job.to_json()))) == job
    recovery = RecoverySettings(3, frozenset({FailureKind.PREEMPTED, FailureKind.QUOTA}), 5.0)
    assert RecoverySettings.from_json(json.loads(json.dumps(recovery.to_json()))) == recovery


def test_recover_uses_the_sweeps_max_attempts_else_the_default_and_the_flag_over_both():
    from hydra_vertex_pipelines.pipeline_builder.recovery import DEFAULT_MAX_ATTEMPTS, RecoverySettings
    from hydra_vertex_pipelines.pipeline_builder.recovery.record import attempt_of, with_max_attempts

    assert with_max_attempts(RecoverySettings(4), None).max_attempts == 4
    assert with_max_attempts(RecoverySettings(1), None).max_attempts == DEFAULT_MAX_ATTEMPTS
    assert with_max_attempts(RecoverySettings(4), 2).max_attempts == 2
    assert attempt_of("projects/p/locations/l/pipelineJobs/app-1-attempt-3") == 3
    assert attempt_of("projects/p/locations/l/pipelineJobs/app-1") == 1
