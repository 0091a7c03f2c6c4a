"""Every JSON file a sweep leaves is strict JSON, and non-finite return values come back to
the sweeper as the floats the basic launcher gives."""

import json
import math
import pickle
from pathlib import Path
from typing import Any, List

import pytest

from conftest import APPS, REPO, run_app
from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.collector import best_trial, objective_summary, objective_value

APP = APPS / "non_finite" / "app.py"
KINDS = "kind=plus_inf,nan_dict,minus_inf"


def _refuse(token: str) -> Any:
    raise ValueError(f"bare {token} in a JSON file")


def strict_load_text(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse)


def strict_load(path: Path) -> Any:
    return strict_load_text(path.read_text(encoding="utf-8"))


def _check(values: List[Any]) -> None:
    inf, nan_dict, ninf = values
    assert math.isinf(inf) and inf > 0
    assert list(nan_dict) == ["v"] and math.isnan(nan_dict["v"])
    assert math.isinf(ninf) and ninf < 0


def test_the_strict_form_round_trips_and_refuses_bare_tokens():
    value = {"a": [1.5, float("nan"), float("inf")], "b": (float("-inf"),), "c": "x"}
    text = strict_json.dumps(value)
    assert "NaN" not in text and "Infinity" not in text
    back = strict_json.loads(text)
    assert math.isnan(back["a"][1]) and back["a"][2] == math.inf and back["b"] == [-math.inf] and back["a"][0] == 1.5
    assert math.isnan(strict_json.loads('{"v": NaN}')["v"])  # files of earlier versions still read
    with pytest.raises(ValueError):
        strict_json.loads_strict('{"v": NaN}')


def test_non_finite_objectives_are_shown_not_ranked():
    rows = [
        {"number": 0, "status": "COMPLETED", "return_value": float("nan")},
        {"number": 1, "status": "COMPLETED", "return_value": float("-inf")},
        {"number": 2, "status": "COMPLETED", "return_value": 2.0},
    ]
    for r in rows:
        r["objective"] = objective_value(r["return_value"], "")
    assert best_trial(rows, "minimize")["number"] == 2
    assert objective_summary(rows, "", "minimize")["non_finite"] == [0, 1]


@pytest.mark.slow
def test_a_local_sweep_of_non_finite_values_writes_strict_json_and_returns_the_same_floats(tmp_path):
    basic, local = tmp_path / "basic.pkl", tmp_path / "local.pkl"
    sweeper = "hydra.sweeper._target_=hydra_plugins.recording_sweeper.RecordingSweeper"
    run_app(APP, ["-m", sweeper, KINDS, f"hydra.sweep.dir={tmp_path / 'basic'}"], cwd=tmp_path, RETURNS_FILE=str(basic))
    sweep = tmp_path / "sweep"
    args = ["-m", sweeper, KINDS, "hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", f"hydra.sweep.dir={sweep}"]
    run_app(APP, args, cwd=tmp_path, RETURNS_FILE=str(local))
    _check(pickle.loads(basic.read_bytes()))
    _check(pickle.loads(local.read_bytes()))
    files = sorted(sweep.rglob("*.json"))
    names = {f.name for f in files}
    assert {"manifest.json", "summary.json", "result.json"} <= names, names
    for f in files:
        strict_load(f)  # raises on a bare NaN or Infinity
    summary = strict_load(sweep / "summary.json")
    assert summary["best"] is None and summary["objective"]["non_finite"] == [0, 2]
    assert [t["return_value"] for t in summary["trials"]] == [
        {"__float__": "inf"},
        {"v": {"__float__": "nan"}},
        {"__float__": "-inf"},
    ]


@pytest.mark.slow
def test_the_emulator_refuses_bare_non_finite_tokens_and_answers_strict_json(emulators, tmp_path):
    import http.client

    from hydra_vertex_pipelines.pipeline_builder.emulator.server import VertexEmulator

    emulator = VertexEmulator(tmp_path / "data", workdir=REPO)
    port = emulator.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        jobs = "/v1/projects/local/locations/us-central1/pipelineJobs"
        conn.request("POST", f"{jobs}?pipelineJobId=nan", b'{"displayName": NaN}', {"Content-Type": "application/json"})
        reply = conn.getresponse()
        answer = reply.read().decode()
        conn.close()
    finally:
        emulator.stop()
    assert reply.status == 400
    assert "NaN is not JSON" in strict_load_text(answer)["error"]["message"]
    assert emulator.runs == {}
