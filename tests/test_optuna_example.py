"""examples/optuna: each batch of 4 trials is one pipeline, and Optuna is told every value."""

import json
import subprocess
import sys

from conftest import QUICKSTART, REPO, read_json

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


def test_optuna_study_in_local_mode_gets_every_value(tmp_path):
    sweep = tmp_path / "sweep"
    argv = [
        str(QUICKSTART),
        "-m",
        "--config-dir",
        str(REPO / "examples" / "optuna" / "conf"),
        "--config-name",
        "study",
        "hydra.launcher.mode=local",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    told = json.loads((sweep / "told.json").read_text())
    assert len(told) == 12
    for n, t in enumerate(sorted(told, key=lambda t: t["number"])):
        result = read_json(sweep / str(n) / "result.json")
        assert result["status"] == "COMPLETED"
        assert t["values"] == [result["return_value"]], f"trial {n}: Optuna was told {t['values']}"
        overrides = read_json(sweep / ("manifest.json" if n < 4 else f"manifest-{n - n % 4}.json"))["trials"][n % 4]["overrides"]
        assert sorted(overrides) == sorted(f"{k}={v}" for k, v in t["params"].items())
    for first in (0, 4, 8):  # three batches, three pipelines
        suffix = "" if first == 0 else f"-{first}"
        assert len(read_json(sweep / f"manifest{suffix}.json")["trials"]) == 4
        assert (sweep / f"pipeline{suffix}.yaml").exists()
        assert (sweep / f"summary{suffix}.json").exists()
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {min(t['values'][0] for t in told)}" in best
