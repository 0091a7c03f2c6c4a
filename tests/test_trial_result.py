"""One result record, one set of rules: the trial writes it, the launcher and the collector
read it, each saying what is wrong with it in its own place."""

import json

import pytest

from hydra_vertex_pipelines.components.trial_result import Flaw, TrialResult, parse_record, record_problem

RECORD = {"status": "COMPLETED", "run_id": "r", "number": 3, "start_time": "2026-01-01T00:00:10+00:00"}


def test_the_written_record_keeps_its_fields_in_order_and_leaves_unset_ones_out():
    result = TrialResult(status="COMPLETED", run_id="r", number=3, end_time="t1", working_dir="/w", return_value=0.5)
    assert list(result.to_json()) == ["status", "return_value", "error", "end_time", "run_id", "number", "working_dir"]
    failed = TrialResult(
        status="FAILED",
        run_id="r",
        number=3,
        end_time="t1",
        working_dir="/w",
        error="boom",
        error_type="ValueError",
        start_time="t0",
        duration_s=1.0,
        vertex_job_id="7",
    )
    assert list(failed.to_json()) == [
        "status",
        "return_value",
        "error",
        "error_type",
        "start_time",
        "duration_s",
        "end_time",
        "run_id",
        "number",
        "working_dir",
        "vertex_job_id",
    ]
    assert record_problem(parse_record(json.dumps(failed.to_json()).encode()), "r", 3) is None


@pytest.mark.parametrize(
    "data, run_id, number, flaw, launcher, collector",
    [
        (None, "r", 3, Flaw.ABSENT, "it left no .vertex/result.json", "no result.json at P"),
        (b"{not json", "r", 3, Flaw.UNREADABLE, ".vertex/result.json is not valid JSON", "unreadable P: Expecting property name"),
        (
            b"[1, 2]",
            "r",
            3,
            Flaw.NOT_AN_OBJECT,
            ".vertex/result.json holds a JSON list, not an object",
            "unreadable P: a JSON list, not an object",
        ),
        (
            json.dumps({**RECORD, "status": "DONE"}).encode(),
            "r",
            3,
            Flaw.NO_ENDING,
            ".vertex/result.json has status 'DONE', not COMPLETED or FAILED",
            "the result.json at P has status 'DONE'",
        ),
        (
            json.dumps(RECORD).encode(),
            "s",
            3,
            Flaw.OTHER_RUN,
            "the .vertex/result.json there belongs to run 'r', not to this run s",
            "the result.json at P belongs to run 'r', not s",
        ),
        (
            json.dumps(RECORD).encode(),
            "r",
            4,
            Flaw.OTHER_TRIAL,
            "the .vertex/result.json there belongs to trial 3",
            "the result.json at P belongs to trial 3",
        ),
    ],
)
def test_each_flaw_has_one_rule_and_two_wordings(data, run_id, number, flaw, launcher, collector):
    problem = record_problem(parse_record(data), run_id, number)
    assert problem is not None and problem.flaw is flaw
    assert str(problem) == launcher
    assert problem.at("P").startswith(collector)


def test_a_reader_that_does_not_know_the_run_takes_any_runs_record():
    assert record_problem(parse_record(json.dumps(RECORD).encode())) is None
    assert record_problem(parse_record(b'{"status": "FAILED"}')) is None
