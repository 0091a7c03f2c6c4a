"""The collector summarises every trial, however it ended."""

import json

from kfp import dsl

from components.collector import collect, numeric_metrics
from components.collector_op import collect_trials, collector_op


def write(tmp_path, number, payload):
    d = tmp_path / str(number)
    d.mkdir()
    if payload is not None:
        (d / "result.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return {"number": number, "overrides": [f"x={number}"], "output_dir": str(d)}


def trials(tmp_path):
    return [
        write(tmp_path, 0, {"status": "COMPLETED", "return_value": 0.5, "error": None, "duration_s": 1.0}),
        write(tmp_path, 1, {"status": "COMPLETED", "return_value": {"loss": 0.1, "acc": 0.9, "name": "m"}}),
        write(tmp_path, 2, {"status": "COMPLETED", "return_value": [1, 2]}),
        write(tmp_path, 3, {"status": "COMPLETED", "return_value": None}),
        write(tmp_path, 4, {"status": "FAILED", "return_value": None, "error": "Traceback...\nValueError: bad"}),
        write(tmp_path, 5, None),
        write(tmp_path, 6, "{not json"),
        write(tmp_path, 7, {"status": "COMPLETED", "return_value": True}),
    ]


def test_summary_keeps_every_trial(tmp_path):
    summary = collect(trials(tmp_path), str(tmp_path / "out" / "summary.json"))
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    rows = {r["number"]: r for r in summary["trials"]}
    assert len(rows) == 8
    assert rows[0]["return_value"] == 0.5 and rows[0]["duration_s"] == 1.0
    assert rows[2]["return_value"] == [1, 2]
    assert rows[3]["status"] == "COMPLETED" and rows[3]["return_value"] is None
    assert rows[4]["status"] == "FAILED" and "ValueError: bad" in rows[4]["error"]
    assert rows[5]["status"] == "MISSING" and "no result.json" in rows[5]["error"]
    assert rows[6]["status"] == "MISSING" and "unreadable" in rows[6]["error"]
    assert rows[1]["overrides"] == ["x=1"]
    assert summary["counts"] == {"COMPLETED": 5, "FAILED": 1, "MISSING": 2}


def test_metrics_are_the_numeric_results(tmp_path):
    summary = collect(trials(tmp_path), str(tmp_path / "out" / "summary.json"))
    assert summary["metrics"] == {"trial_0": 0.5, "trial_1.loss": 0.1, "trial_1.acc": 0.9}
    assert numeric_metrics([{"number": 0, "status": "COMPLETED", "return_value": float("nan")}]) == {}


def test_component_logs_metrics_to_the_kfp_artifact(tmp_path):
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={})
    collect_trials(trials(tmp_path), str(tmp_path / "out" / "summary.json"), metrics)
    assert metrics.metadata["trial_0"] == 0.5
    assert metrics.metadata["trial_1.loss"] == 0.1
    assert metrics.metadata["trials_completed"] == 5
    assert metrics.metadata["trials_missing"] == 2


def test_component_installs_nothing_at_start():
    component = collector_op("us-docker.pkg.dev/p/r/trial:1")
    container = component.component_spec.implementation.container
    assert container.image == "us-docker.pkg.dev/p/r/trial:1"
    script = " ".join(container.command + (container.args or []))
    assert "pip install" not in script
    assert "from components.collector import collect" in script
