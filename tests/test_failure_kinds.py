"""The failure classifier over real-looking evidence: each kind, and unknown."""

import pytest

from conftest import APPS, read_json, run_app
from hydra_vertex_pipelines.components.failures import (
    RULES,
    Failure,
    FailureKind,
    Rule,
    Source,
    TrialEvidence,
    classify,
    failure_of,
    with_failures,
)

QUOTA_429 = "429 The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_l4_gpus"

CASES = [
    # (code, message, kind)
    (
        3,
        "The replica workerpool0-0 exited with a non-zero status of 1. To find out more about why your job exited please check the logs",
        FailureKind.APP,
    ),
    (None, "Job failed with value error in error state: 5.", FailureKind.APP),
    (8, QUOTA_429, FailureKind.QUOTA),
    (None, f"google.api_core.exceptions.ResourceExhausted: {QUOTA_429}", FailureKind.QUOTA),
    (8, "Rate of job submissions exceeded", FailureKind.QUOTA),
    (8, "Resources are insufficient in region: us-central1. Please try a different region.", FailureKind.CAPACITY),
    (None, "RuntimeError: Job failed with error state: 5. Resources are insufficient in region", FailureKind.CAPACITY),
    (13, "The replica workerpool0-0 was preempted.", FailureKind.PREEMPTED),
    (9, "The job was not started within its max_wait_duration of 86400s.", FailureKind.FLEX_START_EXPIRED),
    (4, "The job ran past its timeout of 2s (scheduling.timeout) and was stopped.", FailureKind.TIMEOUT),
    (4, "Deadline exceeded", FailureKind.TIMEOUT),
    (13, "Internal error occurred. Please retry in a few minutes.", FailureKind.INTERNAL),
    (14, "The service is currently unavailable.", FailureKind.INTERNAL),
    (None, "RuntimeError: Job failed with error state: 5.", FailureKind.UNKNOWN),
    (5, "", FailureKind.UNKNOWN),
]


@pytest.mark.parametrize(("code", "message", "kind"), CASES)
def test_classify(code, message, kind):
    assert classify(code, message) is kind


def test_every_kind_has_a_case_and_every_rule_says_where_it_comes_from():
    assert {kind for _, _, kind in CASES} == set(FailureKind)
    assert all(rule.known_from for rule in RULES)


def test_a_rule_added_in_front_wins():
    rules = (Rule(FailureKind.CAPACITY, codes=(14,), pattern="zone .* exhausted"), *RULES)
    assert classify(14, "The zone us-central1-a is exhausted") is FailureKind.INTERNAL
    assert classify(14, "The zone us-central1-a is exhausted", rules) is FailureKind.CAPACITY
    assert classify(14, "unavailable", rules) is FailureKind.INTERNAL


def test_evidence_strongest_first():
    timeout = (4, "The job ran past its timeout of 1s (scheduling.timeout) and was stopped.")
    raised = failure_of(TrialEvidence("FAILED", "Traceback ...\nValueError: bad x\n", job_error=timeout))
    assert raised == Failure(FailureKind.APP, Source.RECORD, None, "ValueError: bad x")
    assert failure_of(TrialEvidence(job_error=timeout, launcher_error=(None, "Job failed"))).source is Source.CUSTOM_JOB
    quota = failure_of(TrialEvidence(launcher_error=(None, QUOTA_429), task_state="FAILED"))
    assert (quota.kind, quota.source) == (FailureKind.QUOTA, Source.LAUNCHER)
    assert failure_of(TrialEvidence(task_state="CANCELLED")) == Failure(
        FailureKind.UNKNOWN, Source.TASK, None, "its task ended CANCELLED"
    )
    assert failure_of(TrialEvidence()) == Failure(FailureKind.UNKNOWN, Source.NONE)


def test_failures_round_trip_and_update_the_last_attempt():
    failure = Failure(FailureKind.PREEMPTED, Source.CUSTOM_JOB, 13, "preempted")
    assert Failure.from_json(failure.to_json()) == failure
    assert Failure.from_json({"kind": "nope", "source": "record"}) is None
    row = {"number": 2, "status": "MISSING", "failure": {"kind": "unknown", "source": "none", "code": None, "message": ""}}
    row["attempts"] = [{"attempt": 1, "status": "MISSING", "failure": row["failure"]}]
    summary = {"trials": [row, {"number": 3, "status": "COMPLETED", "failure": None}]}
    assert with_failures(summary, {2: failure, 3: failure})
    assert row["failure"] == failure.to_json() and row["attempts"][-1]["failure"] == failure.to_json()
    assert summary["trials"][1]["failure"] is None
    assert not with_failures(summary, {2: failure})


@pytest.mark.slow
def test_a_local_sweep_says_why_each_trial_failed(tmp_path):
    """One trial raises, one runs past its trial.timeout, one exits 3, which a rule of the
    user's calls `internal`: each says its kind in the summary, the report and the exit message."""
    (tmp_path / "pids").mkdir()
    sweep = tmp_path / "sweep"
    rule = "hydra.launcher.failure_rules=[{kind:internal,codes:[3],pattern:'status of 3 '}]"
    args = ["-m", "x=1,raise,hang,exit3", "hydra.launcher.trial.timeout=2s", rule, f"hydra.sweep.dir={sweep}"]
    proc = run_app(APPS / "faults" / "app.py", args, check=False, PID_DIR=str(tmp_path / "pids"))
    assert proc.returncode == 1
    assert "Trial 1 (x=raise) failed [app]: ValueError: bad x" in proc.stderr, proc.stderr
    assert "Failed trials by kind: 1 app, 1 internal, 1 timeout" in proc.stdout
    rows = read_json(sweep / "summary.json")["trials"]
    assert [r["failure"] and r["failure"]["kind"] for r in rows] == [None, "app", "timeout", "internal"]
    assert rows[1]["failure"] == {"kind": "app", "code": None, "message": "ValueError: bad x", "source": "record"}
    assert rows[2]["failure"]["source"] == "custom_job" and rows[2]["failure"]["code"] == 4
    assert "timeout of 2s (scheduling.timeout)" in rows[2]["failure"]["message"]
    assert rows[3]["failure"]["message"].startswith("The replica workerpool0-0 exited with a non-zero status of 3 ")
    assert [a["failure"] for r in rows for a in r["attempts"]] == [r["failure"] for r in rows]
    page = (sweep / "report.html").read_text()
    assert 'title="from its record">[app]</span>' in page
    assert 'title="from its CustomJob&#x27;s error, code 4">[timeout]</span>' in page


def test_every_failure_the_emulator_injects_is_classified_as_its_kind():
    """The emulator's fault table and the classification table agree: a rehearsed
    preemption, stockout, quota refusal, expired Flex-start wait or internal error is
    reported as that kind."""
    from hydra_vertex_pipelines.components.failures import FailureKind, classify
    from hydra_vertex_pipelines.pipeline_builder.emulator.faults import FAULT_ERRORS, JOB_CREATION_QUOTA, FaultKind

    expected = {
        FaultKind.PREEMPT.value: FailureKind.PREEMPTED,
        FaultKind.QUOTA.value: FailureKind.QUOTA,
        FaultKind.CAPACITY.value: FailureKind.CAPACITY,
        FaultKind.FLEX_START_EXPIRED.value: FailureKind.FLEX_START_EXPIRED,
        FaultKind.INTERNAL.value: FailureKind.INTERNAL,
        JOB_CREATION_QUOTA: FailureKind.QUOTA,
    }
    values = dict(replica="workerpool0-0", metric="custom_model_training_cpus", region="us-central1", max_wait="60s", limit=60)
    assert set(FAULT_ERRORS) == set(expected)
    for name, error in FAULT_ERRORS.items():
        assert classify(error.code, error.message.format(**values)) is expected[name], name
