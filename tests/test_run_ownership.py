"""A run's results belong to that run: re-runs, concurrent runs and spoiled result files
never lend a trial a value it did not produce in this run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import APPS, REPO, read_json, submit_overrides, wait_for

FAULTS = APPS / "faults" / "app.py"
LOCAL = ["hydra.launcher.mode=local", "hydra.launcher.max_parallel=2"]


def sweep(args, cwd=REPO, **popen):
    return subprocess.run(
        [sys.executable, str(FAULTS), "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300, **popen
    )


@pytest.mark.slow
def test_a_rerun_into_the_same_sweep_dir_never_reads_the_earlier_results(tmp_path):
    first = sweep([*LOCAL, "x=5,2", f"hydra.sweep.dir={tmp_path}"])
    assert first.returncode == 0, first.stderr
    earlier = read_json(tmp_path / "0" / ".vertex" / "result.json")
    summary = (tmp_path / "summary.json").read_text()

    second = sweep([*LOCAL, "x=exit3,2", f"hydra.sweep.dir={tmp_path}"])
    assert second.returncode == 1  # as with the basic launcher, a failed job fails the sweep
    assert "Trial 0 (x=exit3) failed [app]: it left no .vertex/result.json: its process ended with exit code 3" in second.stderr
    assert "giving up" in second.stderr  # the end of its log
    assert f"Its log: {tmp_path / '0' / '.vertex' / 'trial.log'}" in second.stderr
    assert "1 of 2 trials completed" in second.stdout
    assert "Traceback" not in second.stderr
    # the earlier run's files: set aside whole, not read, not overwritten
    aside = tmp_path / "0" / ".vertex" / "earlier-runs" / earlier["run_id"]
    assert read_json(aside / "result.json") == earlier
    assert "trial x=5" in (aside / "trial.log").read_text()
    assert (tmp_path / "summary.json").read_text() == summary
    rerun = read_json(tmp_path / "summary-2.json")
    assert rerun["counts"] == {"MISSING": 1, "COMPLETED": 1}
    assert read_json(tmp_path / "manifest-2.json")["run_id"] != earlier["run_id"]


def test_a_second_local_run_into_a_busy_sweep_dir_is_refused(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "PID_DIR": str(pid_dir)}
    busy = subprocess.Popen(
        [sys.executable, str(FAULTS), "-m", *LOCAL, "x=hang", f"hydra.sweep.dir={sweep_dir}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for(lambda: any(pid_dir.iterdir()))
        second = sweep([*LOCAL, "x=1", f"hydra.sweep.dir={sweep_dir}"])
        assert second.returncode == 1
        assert f"hydra.sweep.dir={sweep_dir} is in use by run" in second.stderr and "Nothing was started" in second.stderr
        assert not (sweep_dir / "pipeline-2.yaml").exists()
    finally:
        busy.send_signal(signal.SIGINT)
        out, _ = busy.communicate(timeout=60)
    assert busy.returncode == 130 and "Traceback" not in out


def test_a_result_that_is_not_an_object_is_that_trials_failure(tmp_path):
    proc = sweep([*LOCAL, "x=listresult,3", f"hydra.sweep.dir={tmp_path}"])
    assert proc.returncode == 1
    assert "Trial 0 (x=listresult) failed [unknown]: .vertex/result.json holds a JSON list, not an object" in proc.stderr
    assert "AttributeError" not in proc.stderr + proc.stdout
    assert read_json(tmp_path / "summary.json")["counts"] == {"MISSING": 1, "COMPLETED": 1}


@pytest.mark.parametrize(
    "record", [[1, 2], "COMPLETED", 3, None, {"status": "COMPLETED"}, {"status": "DONE", "run_id": "r", "number": 0}]
)
def test_malformed_records_of_any_shape_fail_the_trial(record):
    from hydra.core.utils import JobStatus

    from hydra_plugins.vertex_pipelines_launcher._returns import Evidence, job_return
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

    trial = TrialSpec(0, "r_0", ("x=1",), "app-0 x=1", "gs://b/r/0", "/gcs/b/r/0", ())
    ret = job_return(trial, record, "r", Evidence("exit code 0"), cfg=None, hydra_cfg=None, working_dir="w", task_name="app")
    assert ret.status == JobStatus.FAILED
    with pytest.raises(Exception, match=r"Trial 0 \(x=1\) failed \[unknown\]: "):
        _ = ret.return_value


def test_a_record_of_another_run_or_an_earlier_attempt_is_not_this_trials():
    from hydra_vertex_pipelines.components.trial_result import record_problem

    good = {"status": "COMPLETED", "run_id": "r", "number": 3, "start_time": "2026-01-01T00:00:10+00:00"}
    assert record_problem(good, "r", 3) is None
    assert "belongs to run 'other'" in str(record_problem({**good, "run_id": "other"}, "r", 3))
    assert "belongs to trial 4" in str(record_problem({**good, "number": 4}, "r", 3))
    started = 1767225605.0  # 2026-01-01T00:00:05Z: the record is newer, so it is this attempt's
    assert record_problem(good, "r", 3, not_before=started) is None
    assert "earlier attempt" in str(record_problem(good, "r", 3, not_before=started + 10))


@pytest.mark.slow
def test_two_submits_in_the_same_second_into_one_sweep_dir_keep_their_own_pipelines(emulators, tmp_path):
    """Hydra's default sweep dir has one-second resolution: two sweeps started together
    share it. Each must submit its own pipeline and report its own values."""
    env = {**os.environ, "STORAGE_EMULATOR_HOST": emulators["gcs_url"]}
    args = [*submit_overrides(emulators), f"hydra.sweep.dir={tmp_path}"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(FAULTS), "-m", *args, f"x={x}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for x in (11, 22)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    manifests = [read_json(tmp_path / name) for name in ("manifest.json", "manifest-2.json")]
    assert manifests[0]["run_id"] != manifests[1]["run_id"]
    values = {}
    for manifest in manifests:
        (trial,) = manifest["trials"]
        run = emulators["vertex"].runs[manifest["run_id"]].view()
        assert run["state"] == "PIPELINE_STATE_SUCCEEDED"
        summary = read_json(
            Path(manifest["pipeline_yaml"]).parent
            / manifest["pipeline_yaml"].replace("pipeline", "summary").rsplit("/", 1)[1].replace(".yaml", ".json")
        )
        (row,) = summary["trials"]
        assert row["run_id"] == manifest["run_id"]
        values[trial["overrides"][0]] = row["return_value"]
    assert values == {"x=11": 11.0, "x=22": 22.0}


def test_resume_refuses_a_different_sweep(tmp_path):
    import json

    from hydra_plugins.vertex_pipelines_launcher._choices import Mode
    from hydra_plugins.vertex_pipelines_launcher._resume import resumed_run
    from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError

    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "run_id": "app-1",
                "pipeline_root": "gs://b/r",
                "pipeline_name": "app",
                "mode": "submit",
                "trials": [{"overrides": ["x=1"]}, {"overrides": ["x=2"]}],
            }
        )
    )
    same = dict(mode=Mode.SUBMIT, caching=True, pipeline_root="gs://b/r", pipeline_name="app", tag="")
    assert resumed_run(str(tmp_path), **same, job_overrides=[["x=1"], ["x=2"]]).run_id == "app-1"
    with pytest.raises(ConfigError, match=r"trial 1 is 'x=3' here and 'x=2' in"):
        resumed_run(str(tmp_path), **same, job_overrides=[["x=1"], ["x=3"]])
    with pytest.raises(ConfigError, match=r"2 there, 1 here"):
        resumed_run(str(tmp_path), **same, job_overrides=[["x=1"]])
    with pytest.raises(ConfigError, match=r"hydra.launcher.pipeline_name='other'"):
        resumed_run(str(tmp_path), **{**same, "pipeline_name": "other"}, job_overrides=[["x=1"], ["x=2"]])


def test_a_trial_whose_command_line_launches_a_sweep_again_fails_instead_of_recursing(tmp_path):
    """A script that launches a sweep from Python with a task function of its own module,
    forced to the command entry (`auto` pickles it): re-running it in a trial would launch
    the sweep again, and again; the trial fails, once."""
    script = tmp_path / "launch_from_python.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from conftest import APPS, launch_in_process\n\n\n"
        "def task(cfg):\n    return cfg.x\n\n\n"
        "returns = launch_in_process(APPS / 'faults' / 'conf',"
        f" ['hydra.sweep.dir={tmp_path / 'sweep'}', 'hydra.launcher.trial.entry=command'], [['x=1']],"
        " task_function=task)\n"
        "try:\n    returns[0].return_value\nexcept Exception as e:\n    print('FAILED:', e)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FAILED: Trial 0 (x=1) failed [app]: it left no .vertex/result.json: its process ended with exit code 1" in proc.stdout
    log = (tmp_path / "sweep" / "0" / ".vertex" / "trial.log").read_text()
    assert "launched a sweep instead of running its job through @hydra.main: set hydra.launcher.trial.entry=pickle" in log
    assert not list((tmp_path / "sweep" / "0").rglob("pipeline.yaml"))  # no sweep inside the trial
