"""The collector summarises every trial, however it ended."""

import json

from kfp import dsl

from hydra_vertex_pipelines.components.collector import collect, numeric_metrics
from hydra_vertex_pipelines.components.collector_op import collect_trials, collector_op


def write(tmp_path, number, payload):
    d = tmp_path / str(number)
    (d / ".vertex").mkdir(parents=True)
    if payload is not None:
        (d / ".vertex" / "result.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))
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


def artifacts(tmp_path):
    out = tmp_path / "artifacts"
    return (
        dsl.Metrics(name="metrics", uri=str(out / "metrics"), metadata={}),
        dsl.Markdown(name="markdown", uri=str(out / "markdown"), metadata={}),
        dsl.HTML(name="html", uri=str(out / "html"), metadata={}),
    )


def test_component_logs_metrics_to_the_kfp_artifact(tmp_path):
    metrics, markdown, html = artifacts(tmp_path)
    collect_trials(trials(tmp_path), str(tmp_path / "out" / "summary.json"), metrics, markdown, html)
    assert metrics.metadata["trial_0"] == 0.5
    assert metrics.metadata["trial_1.loss"] == 0.1
    assert metrics.metadata["trials_completed"] == 5
    assert metrics.metadata["trials_missing"] == 2
    # The objective is the return value itself by default: a number in trial 0 only.
    assert metrics.metadata["best_trial"] == 0 and metrics.metadata["best_objective"] == 0.5


def test_component_logs_the_best_trial(tmp_path):
    metrics, markdown, html = artifacts(tmp_path)
    summary_path = str(tmp_path / "out" / "summary.json")
    rows = trials(tmp_path)
    collect_trials(rows, summary_path, metrics, markdown, html, objective_key="loss")
    assert metrics.metadata["best_trial"] == 1 and metrics.metadata["best_objective"] == 0.1
    metrics, markdown, html = artifacts(tmp_path)
    collect_trials(rows, summary_path, metrics, markdown, html, objective_key="acc", objective_direction="maximize")
    assert metrics.metadata["best_trial"] == 1 and metrics.metadata["best_objective"] == 0.9


def test_component_writes_the_markdown_and_html_reports(tmp_path):
    metrics, markdown, html = artifacts(tmp_path)
    report = tmp_path / "out" / "report.html"
    collect_trials(trials(tmp_path), str(tmp_path / "out" / "summary.json"), metrics, markdown, html, report_path=str(report))
    page = report.read_text()
    assert page == (tmp_path / "artifacts" / "html").read_text()
    assert page.count('class="plot"') == 2  # x, and trial number
    assert 'href="../0"' in page  # the trial's folder, relative to the report
    text = (tmp_path / "artifacts" / "markdown").read_text()
    assert "| ★ | 0 | COMPLETED |" in text  # the one numeric return value
    assert "| FAILED |" in text and "ValueError: bad" in text and "MISSING" in text


def test_component_writes_no_report_file_without_a_path(tmp_path):
    metrics, markdown, html = artifacts(tmp_path)
    collect_trials(trials(tmp_path), str(tmp_path / "out" / "summary.json"), metrics, markdown, html)
    assert (tmp_path / "artifacts" / "html").exists()
    assert not list((tmp_path / "out").glob("*.html"))


def test_component_installs_nothing_at_start():
    component = collector_op("us-docker.pkg.dev/p/r/trial:1")
    container = component.component_spec.implementation.container
    assert container.image == "us-docker.pkg.dev/p/r/trial:1"
    script = " ".join(container.command + (container.args or []))
    assert "pip install" not in script
    assert "from hydra_vertex_pipelines.components.collector import collect" in script
    outputs = component.component_spec.outputs
    assert {name: o.type for name, o in outputs.items()} == {
        "metrics": "system.Metrics@0.0.1",
        "markdown": "system.Markdown@0.0.1",
        "html": "system.HTML@0.0.1",
    }


def test_a_record_of_another_run_or_trial_is_missing_when_the_run_is_known(tmp_path):
    """The collector applies the launcher's rules: told its run, it takes only that run's
    record of each trial; a record without an ending is no result either."""
    record = {"status": "COMPLETED", "return_value": 1.0, "run_id": "r", "number": 0}
    rows = [
        write(tmp_path, 0, record),
        write(tmp_path, 1, record),  # trial 0's record in trial 1's folder
        write(tmp_path, 2, {**record, "number": 2, "run_id": "other"}),
        write(tmp_path, 3, {**record, "number": 3, "status": "DONE"}),
    ]
    summary = collect(rows, str(tmp_path / "out" / "summary.json"), run_id="r")
    by_number = {r["number"]: r for r in summary["trials"]}
    assert by_number[0]["status"] == "COMPLETED"
    assert by_number[1]["status"] == "MISSING" and "belongs to trial 0" in by_number[1]["error"]
    assert by_number[2]["status"] == "MISSING" and "belongs to run 'other', not r" in by_number[2]["error"]
    assert by_number[3]["status"] == "MISSING" and "has status 'DONE', not COMPLETED or FAILED" in by_number[3]["error"]
    assert summary["counts"] == {"COMPLETED": 1, "MISSING": 3}
