"""Recovery's acceptance, against the emulator started from its command line: a 20-trial
Spot sweep of examples/preemptible's trainer, with 30% of first attempts preempted and a
burst of 429s at CustomJob creation, ends with every trial COMPLETED and its true value,
exit 0, in at most 3 PipelineJobs, the preempted trials resumed from their checkpoints.
Also: a trainer that turns the SIGTERM into an exception is still `preempted`, and the
attempt after a quota error waits `quota_backoff`."""

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import APPS, REPO, read_json, run_app
from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source, TrialEvidence, failure_of
from hydra_vertex_pipelines.pipeline_builder.emulator.access_log import Sender, read_access_log
from test_emulator_process import Emulator

EXAMPLE = REPO / "examples" / "preemptible"
FAULTS = APPS / "faults"
TRIALS = 20
STEPS = 100  # 10 s of the trainer's 0.1 s steps: it is still training when preempted 6 s in, though
# ten trials starting at once on two CPUs can take 4 s to reach it
LRS = [round(0.01 * (i + 1), 2) for i in range(TRIALS)]
BACKOFF_S = 3.0
# The fault plan: 30% of the first attempts preempted 6 s in, a 429 for a quarter of the
# first creations, and two rules for the faults app's trials below (see the file).
FAULT_OPTIONS = ["--faults", str(FAULTS / "acceptance.yaml"), "--max-parallel", "10"]


def test_a_preemption_outranks_a_failed_record():
    """A trainer that catches a preemption's SIGTERM and raises leaves a FAILED record; the
    CustomJob's error (or gcpc's launcher's, which carries it) says it was preempted."""
    from hydra_vertex_pipelines.pipeline_builder.emulator.faults import FAULT_ERRORS, FaultKind

    message = FAULT_ERRORS[FaultKind.PREEMPT.value].message.format(replica="workerpool0-0")
    raised = "Traceback (most recent call last):\n...\nRuntimeError: stopped by SIGTERM\n"
    caught = failure_of(TrialEvidence("FAILED", raised, job_error=(10, message)))
    assert caught == Failure(FailureKind.PREEMPTED, Source.CUSTOM_JOB, 10, message)
    launcher = failure_of(
        TrialEvidence("FAILED", raised, launcher_error=(None, f"CustomJob j ended JOB_STATE_FAILED: {message}"))
    )
    assert (launcher.kind, launcher.source) == (FailureKind.PREEMPTED, Source.LAUNCHER)
    # Any other cloud error leaves the app's own failure: it raised for its own reasons. The
    # emulator's error ends with the trial's last log lines: words there are the app's.
    tail = 'Last lines of replica.log:\n  File "examples/preemptible/train.py", line 37\nINFO - preempted at step 3, exiting'
    exited = f"The replica workerpool0-0 exited with a non-zero status of 1 (exit code 1). {tail}"
    for error in [(3, exited), (13, "Internal error occurred.")]:
        assert failure_of(TrialEvidence("FAILED", raised, job_error=error)) == Failure(
            FailureKind.APP, Source.RECORD, None, "RuntimeError: stopped by SIGTERM"
        )


def test_results_of_a_sweep_not_followed_see_the_preemption_behind_a_failed_record():
    """The same rule where `results` explains a summary's rows: a record's FAILED is read
    again beside the task's error (no request here: the task names no CustomJob)."""
    from hydra_vertex_pipelines.pipeline_builder.cloud.failures import trial_failures

    record = {"kind": "app", "code": None, "message": "RuntimeError: stopped by SIGTERM", "source": "record"}
    rows = [{"number": n, "status": "FAILED", "failure": record} for n in (0, 1)]
    preempted = "CustomJob j ended JOB_STATE_FAILED: The replica workerpool0-0 was preempted: its Spot VM was reclaimed."
    tasks = {"t0": {"state": "FAILED", "error": preempted}, "t1": {"state": "FAILED", "error": "exited with 1"}}
    failures = trial_failures(rows, tasks, {0: "t0", 1: "t1"}, {0: "a-0", 1: "a-1"})
    assert (failures[0].kind, failures[0].source) == (FailureKind.PREEMPTED, Source.LAUNCHER)
    assert failures[1] == Failure(FailureKind.APP, Source.RECORD, None, "RuntimeError: stopped by SIGTERM")


def test_the_launcher_reads_the_job_error_of_failed_trials_only():
    from hydra_plugins.vertex_pipelines_launcher._returns import needs_job_error

    record = {"status": "COMPLETED", "run_id": "r", "number": 0}
    assert not needs_job_error(record, "r", 0)
    assert needs_job_error({**record, "status": "FAILED"}, "r", 0)  # a preemption may outrank it
    assert needs_job_error(None, "r", 0) and needs_job_error(record, "other-run", 0)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """Started from the example's folder, as its README says (trials run there)."""
    started = Emulator(tmp_path_factory.mktemp("acceptance") / "data", cwd=EXAMPLE, args=FAULT_OPTIONS)
    yield started
    started.stop(signal.SIGTERM)


def access_log(emulator: Emulator) -> Path:
    return Path(emulator.wait_for(r"requests logged in (\S+)$").group(1))


def true_loss(lr: float) -> float:
    """What an uninterrupted run of the trainer returns."""
    import runpy

    trainer = runpy.run_path(str(EXAMPLE / "train.py"))
    data, w, b = trainer["make_data"](0), 0.0, 0.0
    for _ in range(STEPS):
        w, b = trainer["step"](w, b, lr, data)
    return trainer["loss"](w, b, data)


def submit_options(emulator: Emulator, strategy: str) -> List[str]:
    return [
        "-m",
        "hydra.launcher.mode=submit",
        f"hydra.launcher.api_endpoint={emulator.api}",
        "hydra.launcher.project=local",
        "hydra.launcher.pipeline_root=gs://acceptance/sweeps",
        "hydra.launcher.trial.image_uri=local",
        "hydra.launcher.poll_interval=0.5",
        f"hydra.launcher.trial.strategy={strategy}",
        "hydra.launcher.recovery.max_attempts=3",
        f"hydra.launcher.recovery.quota_backoff={BACKOFF_S:g}",
    ]


@pytest.fixture(scope="module")
def spot_sweep(emulator, tmp_path_factory):
    """The example's sweep as its README runs it, over 20 learning rates."""
    sweep_dir = tmp_path_factory.mktemp("spot")
    env = {**os.environ, "STORAGE_EMULATOR_HOST": emulator.gcs_url, "HYDRA_FULL_ERROR": "0"}
    args = [*submit_options(emulator, "SPOT"), f"steps={STEPS}", f"hydra.sweep.dir={sweep_dir}", "lr=" + ",".join(map(str, LRS))]
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600)
    return proc, sweep_dir


def first_attempt_kinds(summary: Dict[str, Any]) -> Dict[int, Any]:
    return {t["number"]: (t["attempts"][0]["failure"] or {}).get("kind") for t in summary["trials"]}


@pytest.mark.slow  # the emulator's command line, a 20-trial sweep and its recovery
def test_a_spot_sweep_with_preemptions_and_429s_ends_completed_with_true_values(emulator, spot_sweep):
    proc, sweep_dir = spot_sweep
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = read_json(sweep_dir / "summary.json")
    assert summary["counts"] == {"COMPLETED": TRIALS}
    assert [t["return_value"] for t in summary["trials"]] == [true_loss(lr) for lr in LRS]
    jobs = read_json(sweep_dir / "manifest.json")["vertex"]["jobs"]
    assert 2 <= len(jobs) <= 3 and len(set(jobs)) == len(jobs)
    kinds = first_attempt_kinds(summary)
    preempted = [n for n, k in kinds.items() if k == "preempted"]
    quota = [n for n, k in kinds.items() if k == "quota"]
    assert (len(preempted), len(quota)) == (6, 4), kinds  # the seed's draws: 30% of 20 preempted, and four 429s
    assert set(kinds.values()) == {None, "preempted", "quota"}
    for trial in summary["trials"]:  # every attempt listed: the failed first ones, then the completed one
        statuses = [(a["attempt"], a["status"]) for a in trial["attempts"]]
        assert statuses == ([(1, "COMPLETED")] if kinds[trial["number"]] is None else [(1, "MISSING"), (2, "COMPLETED")])
    # The 429s: gcpc's launcher's CreateCustomJob refused, once per quota trial, as the log shows.
    refused = [e for e in read_access_log(access_log(emulator)) if e["status"] == 429]
    assert len(refused) == len(quota) and {e["sender"] for e in refused} == {Sender.GCPC_LAUNCHER.value}
    assert f"Recovery: waiting {BACKOFF_S:.0f} s (quota_backoff) after a quota error" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_preempted_trials_resumed_from_their_checkpoints(emulator, spot_sweep):
    proc, sweep_dir = spot_sweep
    assert proc.returncode == 0
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    summary = read_json(sweep_dir / "summary.json")
    kinds = first_attempt_kinds(summary)
    trials = {t["number"]: t for t in read_json(sweep_dir / "manifest.json")["trials"]}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
        storage = gcs.client("local")
        starts = {
            n: gcs.read_json(storage, f"{t['output_uri'].rstrip('/')}/checkpoints/latest.json")["starts"]
            for n, t in trials.items()
        }
    for number, kind in kinds.items():
        if kind == "preempted":  # saved on SIGTERM mid-run, then started from that step
            assert len(starts[number]) == 2 and starts[number][0] == 0 and 0 < starts[number][1] < STEPS, (number, starts)
        else:  # never started before: from step 0, once (a 429 trial never ran the first time)
            assert starts[number] == [0], (number, kind, starts[number])


@pytest.mark.slow
def test_a_trainer_that_raises_on_sigterm_is_preempted_and_recovered(emulator, tmp_path):
    options = [o.replace("max_attempts=3", "max_attempts=2") for o in submit_options(emulator, "SPOT")]
    command = f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"
    args = [*options, "hydra.launcher.trial.entry=command", command, f"hydra.sweep.dir={tmp_path}"]
    proc = run_app(
        FAULTS / "app.py", [*args, "+catch_sigterm=true", "+sleep=7", "x=3"], check=False, STORAGE_EMULATOR_HOST=emulator.gcs_url
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trial 0 (preempted)" in proc.stdout + proc.stderr
    (trial,) = read_json(tmp_path / "summary.json")["trials"]
    assert trial["return_value"] == 3.0
    first, second = trial["attempts"]
    assert (first["status"], first["failure"]["kind"], first["failure"]["source"]) == ("FAILED", "preempted", "custom_job")
    assert "was preempted" in first["failure"]["message"]
    assert (second["status"], second["failure"]) == ("COMPLETED", None)


@pytest.mark.slow
def test_the_attempt_after_a_quota_error_waits_the_backoff(emulator, tmp_path):
    log = access_log(emulator)
    before = len(read_access_log(log))
    options = [o.replace("max_attempts=3", "max_attempts=2") for o in submit_options(emulator, "STANDARD")]
    command = f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"
    args = [*options, "hydra.launcher.trial.entry=command", command, f"hydra.sweep.dir={tmp_path}", "x=7.5"]
    proc = run_app(FAULTS / "app.py", args, check=False, STORAGE_EMULATOR_HOST=emulator.gcs_url)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "trial 0 (quota)" in out and f"Recovery: waiting {BACKOFF_S:.0f} s (quota_backoff) after a quota error" in out
    (trial,) = read_json(tmp_path / "summary.json")["trials"]
    assert [(a["attempt"], (a["failure"] or {}).get("kind")) for a in trial["attempts"]] == [(1, "quota"), (2, None)]
    entries = read_access_log(log)[before:]
    refused = [e for e in entries if e["status"] == 429]
    assert [(e["sender"], e["call"]) for e in refused] == [(Sender.GCPC_LAUNCHER.value, "custom_job_create")]
    creates = [e for e in entries if e["sender"] == Sender.CLIENT.value and e["call"] == "create"]
    assert len(creates) == 2
    jobs = read_json(tmp_path / "manifest.json")["vertex"]["jobs"]
    first_end = emulator.request(f"/v1/{jobs[0]}")["endTime"]
    # The second PipelineJob was created after the first ended and the backoff passed.
    assert when(refused[0]["time"]) < when(first_end)
    assert (when(creates[1]["time"]) - when(first_end)) >= BACKOFF_S


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
