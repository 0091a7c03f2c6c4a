"""examples/optuna: each batch of 4 trials is one pipeline, and Optuna is told every value,
in local mode and submitted to the Vertex emulator."""

import json
import subprocess
import sys

import pytest

from conftest import QUICKSTART, REPO, read_json, submit_overrides

pytestmark = pytest.mark.slow  # Optuna sweeps, locally and through the emulators

# Runs the example in this interpreter with Optuna's Study.tell recorded, then saves the record.
PROBE = """
import json, runpy, sys
import optuna
told = []
tell = optuna.study.Study.tell
def recording_tell(self, trial, values=None, state=None):
    told.append({"number": trial.number, "values": values, "state": str(state), "params": trial.params})
    return tell(self, trial, values=values, state=state)
optuna.study.Study.tell = recording_tell
sys.argv = json.loads(sys.argv[1])
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    open(sys.argv[-1].split("=", 1)[1] + "/told.json", "w").write(json.dumps(told))
"""


@pytest.mark.parametrize("mode", ["local", "submit"])
def test_optuna_study_gets_every_value(tmp_path, mode, request):
    sweep = tmp_path / "sweep"
    launcher = ["hydra.launcher.mode=local"]
    if mode == "submit":
        launcher = submit_overrides(request.getfixturevalue("emulators"))
    argv = [
        str(QUICKSTART),
        "-m",
        "--config-dir",
        str(REPO / "examples" / "optuna" / "conf"),
        "--config-name",
        "study",
        *launcher,
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    told = json.loads((sweep / "told.json").read_text())
    assert len(told) == 12
    rows = {}
    for first in (0, 4, 8):  # three batches, three pipelines, three summaries
        suffix = "" if first == 0 else f"-{first}"
        assert len(read_json(sweep / f"manifest{suffix}.json")["trials"]) == 4
        assert (sweep / f"pipeline{suffix}.yaml").exists()
        rows.update({r["number"]: r for r in read_json(sweep / f"summary{suffix}.json")["trials"]})
    assert sorted(rows) == list(range(12))
    for t in told:
        row = rows[t["number"]]
        assert row["status"] == "COMPLETED"
        assert t["values"] == [row["return_value"]], f"trial {t['number']}: Optuna was told {t['values']}"
        assert sorted(row["overrides"]) == sorted(f"{k}={v}" for k, v in t["params"].items())
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {min(t['values'][0] for t in told)}" in best
