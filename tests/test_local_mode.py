"""Local mode: the compiled pipeline runs on this machine and its trials' results come back."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.utils import JobStatus

from conftest import (
    APPS,
    QUICKSTART,
    REPO,
    alive,
    launch_in_process,
    read_json,
    readme_line,
    run_app,
    run_shell,
    user_checkout,
    wait_for,
)

pytestmark = pytest.mark.slow  # local-mode sweeps, most in subprocesses

FAULTS = APPS / "faults"
COMMAND_ENTRY = ["hydra.launcher.trial.entry=command", f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"]


def failure_text(ret) -> str:
    with pytest.raises(Exception) as e:
        _ = ret.return_value
    return str(e.value)


def test_quickstart_runs_locally(tmp_path):
    """The README's quickstart run step, as written, in a clone whose .venv is this environment."""
    setup_and_run = readme_line("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python examples/quickstart/")
    checkout = user_checkout(tmp_path / "clone")
    proc = run_shell(setup_and_run.rsplit(" && ", 1)[1], checkout)
    sweeps = list((checkout / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    tmp_path = sweeps[0]
    for n in range(4):
        result = read_json(tmp_path / str(n) / ".vertex" / "result.json")
        assert result["status"] == "COMPLETED" and isinstance(result["return_value"], float)
        assert (tmp_path / str(n) / ".hydra" / "config.yaml").exists()
        assert f"[train-{n}]" in proc.stdout  # streamed with a prefix
        assert "loss=" in (tmp_path / str(n) / ".vertex" / "trial.log").read_text()  # and kept
    summary = read_json(tmp_path / "summary.json")
    assert summary["counts"] == {"COMPLETED": 4}
    assert {r["number"] for r in summary["trials"]} == {0, 1, 2, 3}
    assert "4 of 4 trials completed" in proc.stdout
    assert not Path("/gcs").exists()
    losses = {r["number"]: r["return_value"] for r in summary["trials"]}
    assert summary["best"]["number"] == min(losses, key=losses.get)  # the default objective: the value, minimized
    report = (tmp_path / "report.html").read_text()
    assert f"Report: {tmp_path / 'report.html'}" in proc.stdout + proc.stderr
    assert report.count('<figure class="plot"') == 3  # lr, batch_size, and the trial number
    assert 'data-setting="lr"' in report and 'data-setting="batch_size"' in report


def _double(cfg):
    if cfg.x == 1:
        raise ValueError("x=1 is not allowed")
    return {"double": cfg.x * 2}


def test_pickled_trials_return_values_and_errors(tmp_path):
    returns = launch_in_process(FAULTS / "conf", [f"hydra.sweep.dir={tmp_path}"], [["x=0"], ["x=1"], ["x=2"]], _double)
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert returns[0].return_value == {"double": 0}
    assert returns[2].return_value == {"double": 4}
    assert "ValueError: x=1 is not allowed" in failure_text(returns[1])
    assert returns[2].cfg == {"x": 2}
    assert returns[2].hydra_cfg.hydra.job.num == 2
    assert (tmp_path / "0" / ".vertex" / "job.pkl").exists()
    assert read_json(tmp_path / "summary.json")["counts"] == {"COMPLETED": 2, "FAILED": 1}


def test_custom_resolvers_reach_pickled_trials(tmp_path):
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("times_ten", lambda v: int(v) * 10, replace=True)
    try:
        returns = launch_in_process(
            FAULTS / "conf", [f"hydra.sweep.dir={tmp_path}"], [["x=4", "+y='${times_ten:${x}}'"]], lambda c: c.y
        )
    finally:
        OmegaConf.clear_resolver("times_ten")
    assert returns[0].return_value == 40


@pytest.mark.parametrize("fresh", ["true", "false"])
def test_dying_trials_are_failed_with_exit_code_and_log_tail(tmp_path, fresh):
    jobs = [["x=1"], ["x=raise"], ["x=sigkill"], ["x=exit3"], ["x=5"]]
    overrides = [f"hydra.sweep.dir={tmp_path}", f"hydra.launcher.fresh_interpreters={fresh}", *COMMAND_ENTRY]
    returns = launch_in_process(FAULTS / "conf", overrides, jobs)
    statuses = [r.status for r in returns]
    assert statuses == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.FAILED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert returns[0].return_value == 1.0 and returns[4].return_value == 5.0
    raised = failure_text(returns[1])
    # The app recorded its error, and its traceback was printed as it ran: not again.
    assert "ValueError: bad x" in raised and "Traceback" not in raised and "Last lines" not in raised
    killed = failure_text(returns[2])
    assert "killed by signal SIGKILL" in killed and "trial x=sigkill" in killed
    exited = failure_text(returns[3])
    assert "exit code 3" in exited and "giving up" in exited
    summary = read_json(tmp_path / "summary.json")  # the collector still ran
    assert summary["counts"] == {"COMPLETED": 2, "FAILED": 1, "MISSING": 2}


def _overlap(intervals) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    return peak


def test_max_parallel_is_a_real_limit(tmp_path, caplog, monkeypatch):
    from datetime import datetime

    monkeypatch.setattr("os.cpu_count", lambda: 2)  # a limit above the CPU count is used as given
    jobs = [[f"x={i}", "+sleep=0.6"] for i in range(7)]
    with caplog.at_level("INFO", logger="hydra_plugins.vertex_pipelines_launcher"):
        returns = launch_in_process(
            FAULTS / "conf", [f"hydra.sweep.dir={tmp_path}", "hydra.launcher.max_parallel=3", *COMMAND_ENTRY], jobs
        )
    assert (
        "Running 7 trials locally, at most 3 at once (hydra.launcher.max_parallel; more than this machine's 2 CPUs" in caplog.text
    )
    assert all(r.status == JobStatus.COMPLETED for r in returns)
    intervals = []
    for n in range(7):
        result = read_json(tmp_path / str(n) / ".vertex" / "result.json")
        intervals.append((datetime.fromisoformat(result["start_time"]), datetime.fromisoformat(result["end_time"])))
    assert 1 < _overlap(intervals) <= 3  # in parallel, never more than the limit


def test_ctrl_c_stops_every_trial_and_keeps_finished_ones(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(FAULTS / "app.py"),
            "-m",
            "x=1,hang,hang",
            "hydra.launcher.max_parallel=3",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=REPO,
        env={**os.environ, "PID_DIR": str(pid_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Each task has a TMPDIR of its own until the runner has recorded its end: once trial 0
    # wrote its result, two left means it has ended while the two hanging trials run.
    work = sweep / ".vertex_local"
    wait_for(
        lambda: (
            len(list(pid_dir.iterdir())) == 2
            and (sweep / "0" / ".vertex" / "result.json").exists()
            and len(list(work.glob("*/*/tmp"))) == 2
        ),
        what="the hanging trials to start and trial 0 to end",
    )
    pids = [int(p.name) for p in pid_dir.iterdir()]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Interrupted: running trials were stopped" in out
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5, what="the trial processes to end: they were left behind")
    assert read_json(sweep / "0" / ".vertex" / "result.json")["return_value"] == 1.0
    state = read_json(next((sweep / ".vertex_local").iterdir()) / "run.json")
    assert sorted(t["state"] for t in state["tasks"].values()) == ["CANCELLED", "CANCELLED", "CANCELLED", "SUCCEEDED"]


def test_run_local_cli_runs_a_compiled_pipeline(tmp_path):
    sweep = tmp_path / "sweep"
    run_app(QUICKSTART, ["-m", "hydra.launcher.mode=compile", "lr=0.1,0.01", f"hydra.sweep.dir={sweep}"])
    manifest = read_json(sweep / "manifest.json")
    root = tmp_path / "bucket"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hydra_vertex_pipelines.pipeline_builder",
            "run-local",
            str(sweep / "pipeline.yaml"),
            "--root",
            str(root),
            "--max-parallel",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pipeline SUCCEEDED" in proc.stdout
    for trial in manifest["trials"]:
        local = root / trial["output_uri"][len("gs://") :]
        assert read_json(local / ".vertex" / "result.json")["status"] == "COMPLETED"
    summary = root / manifest["summary_path"][len("/gcs/") :]
    assert read_json(summary)["counts"] == {"COMPLETED": 2}


def test_run_local_cli_rejects_bad_arguments(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hydra_vertex_pipelines.pipeline_builder",
            "run-local",
            str(tmp_path / "none.yaml"),
            "--max-parallel",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--max-parallel '0': expected a whole number >= 1" in proc.stderr
