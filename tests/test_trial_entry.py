"""The trial entry runs one job as the basic launcher would and writes a truthful result.json."""

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import List

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from conftest import APPS, REPO, read_json
from hydra_plugins.vertex_pipelines_launcher.trial_entry import ENTRY_MODULE, parse
from hydra_plugins.vertex_pipelines_launcher.trial_record import to_json, trial_result


def run_trial(sweep_dir, overrides: List[str], num: int = 0, run_id: str = "run-1") -> subprocess.CompletedProcess:
    """A trial's command line as the launcher compiles it, for the `raising` test app."""
    argv = [
        "--num",
        str(num),
        "--run-id",
        run_id,
        "--sweep-dir",
        str(sweep_dir),
        "--",
        str(APPS / "raising" / "app.py"),
        "--multirun",
        *overrides,
    ]
    return subprocess.run(
        [sys.executable, "-m", ENTRY_MODULE, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def test_parse_splits_the_entry_options_from_the_app_command_line():
    args = parse(["--num", "3", "--run-id", "r", "--sweep-dir", "/gcs/b/r", "--", "-m", "pkg.app", "--config-name=c", "x=1"])
    assert (args.num, args.run_id, args.sweep_dir) == (3, "r", "/gcs/b/r")
    assert args.program == ["-m", "pkg.app"] and args.app_args == ["--config-name=c", "x=1"]
    assert parse(["--num", "0", "--run-id", "r", "--sweep-dir", "d", "--", "train.py"]).program == ["train.py"]


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
    record = trial_result(JobReturn(status=JobStatus.FAILED, _return_value=err), 100.0, 102.5, run_id="r", number=0).to_json()
    assert record["status"] == "FAILED"
    assert record["return_value"] is None
    assert record["error_type"] == "ValueError"
    assert "Traceback" in record["error"] and "ValueError: boom" in record["error"]
    assert record["duration_s"] == 2.5
    assert record["start_time"].startswith("1970-01-01T00:01:40")


def test_completed_trial_writes_its_value(tmp_path):
    proc = run_trial(tmp_path, ["+x=1"], num=4, run_id="run-7")
    assert proc.returncode == 0, proc.stderr
    result = read_json(tmp_path / "4" / ".vertex" / "result.json")
    assert result["status"] == "COMPLETED"
    assert (result["run_id"], result["number"]) == ("run-7", 4)
    assert result["return_value"] == {"score": 1.5, "per_class": [0.5, 0.75], "cfg": {"x": 1}}
    assert result["error"] is None
    assert result["duration_s"] >= 0


def test_raising_trial_writes_failed_result_and_exits_non_zero(tmp_path):
    proc = run_trial(tmp_path, ["+fail=yes"])
    assert proc.returncode == 1
    assert "Error executing job with overrides: ['+fail=yes']" in proc.stderr
    result = read_json(tmp_path / "0" / ".vertex" / "result.json")
    assert result["status"] == "FAILED"
    assert "RuntimeError: trial failed on purpose: yes" in result["error"]


def test_unserializable_value_is_kept_as_repr(tmp_path):
    assert run_trial(tmp_path, ["+odd=1"]).returncode == 0
    result = read_json(tmp_path / "0" / ".vertex" / "result.json")
    assert result["return_value"] == {"model": "<Unserializable>", "score": 1.5}
    assert result["return_value_is_repr"] is True
