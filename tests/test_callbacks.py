"""The trial-side callback writes a truthful result.json."""

from dataclasses import dataclass

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from conftest import APPS, read_json, run_app
from hydra_plugins.vertex_pipelines_launcher.callbacks import result_record, to_json
from hydra_plugins.vertex_pipelines_launcher.config import TRIAL_HYDRA_OVERRIDE as CALLBACK


class Scalar:
    """Stands for a numpy or torch scalar: it converts itself with item()."""

    def item(self) -> float:
        return 0.25


@dataclass
class Point:
    x: int
    y: float


def test_to_json_converts_common_values():
    assert to_json(1.5) == (1.5, True)
    assert to_json({"a": (1, 2), 3: None}) == ({"a": [1, 2], "3": None}, True)
    assert to_json(Scalar()) == (0.25, True)
    assert to_json(Point(1, 2.5)) == ({"x": 1, "y": 2.5}, True)
    assert to_json(OmegaConf.create({"a": "${b}", "b": 2})) == ({"a": 2, "b": 2}, True)
    assert to_json(object)[1] is False
    value, exact = to_json({"ok": 1, "bad": {1, 2}})
    assert value["ok"] == 1 and isinstance(value["bad"], str) and exact is False


def test_result_record_of_a_failure_keeps_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError as e:
        err = e
    record = result_record(JobReturn(status=JobStatus.FAILED, _return_value=err), 100.0, 102.5)
    assert record["status"] == "FAILED"
    assert record["return_value"] is None
    assert record["error_type"] == "ValueError"
    assert "Traceback" in record["error"] and "ValueError: boom" in record["error"]
    assert record["duration_s"] == 2.5
    assert record["start_time"].startswith("1970-01-01T00:01:40")


def test_completed_trial_writes_its_value(tmp_path):
    run_app(APPS / "raising" / "app.py", [f"hydra.run.dir={tmp_path}", "+x=1", CALLBACK])
    result = read_json(tmp_path / "result.json")
    assert result["status"] == "COMPLETED"
    assert result["return_value"] == {"score": 1.5, "per_class": [0.5, 0.75], "cfg": {"x": 1}}
    assert result["error"] is None
    assert result["duration_s"] >= 0


def test_raising_trial_writes_failed_result_and_exits_non_zero(tmp_path):
    proc = run_app(APPS / "raising" / "app.py", [f"hydra.run.dir={tmp_path}", "+fail=yes", CALLBACK], check=False)
    assert proc.returncode != 0
    result = read_json(tmp_path / "result.json")
    assert result["status"] == "FAILED"
    assert "RuntimeError: trial failed on purpose: yes" in result["error"]


def test_unserializable_value_is_kept_as_repr(tmp_path):
    run_app(APPS / "raising" / "app.py", [f"hydra.run.dir={tmp_path}", "+odd=1", CALLBACK])
    result = read_json(tmp_path / "result.json")
    assert result["return_value"] == {"model": "<Unserializable>", "score": 1.5}
    assert result["return_value_is_repr"] is True
