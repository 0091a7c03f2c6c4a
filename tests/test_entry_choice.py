"""Which entry a trial runs (`trial.entry`), and what the app's callbacks see in each.

`auto` re-runs the command line only of a sweep that Hydra's command-line entry started;
a sweep composed in Python (hydra-zen's `launch`) is pickled and returns what the basic
launcher returns. A callback keeps state from `on_multirun_start` in a pickled trial, and
is built afresh, without that call, in a command-entry trial.
"""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from conftest import APPS

LOCAL_MODE = ["hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local"]


def run_script(app: Path, args: List[str], cwd: Path) -> Tuple[int, subprocess.CompletedProcess]:
    """Runs `python app.py ARGS` from a copy of the app's folder; its pid and outcome."""
    shutil.copytree(app.parent, cwd)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen(
        [sys.executable, app.name, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = proc.communicate(timeout=300)
    return proc.pid, subprocess.CompletedProcess(proc.args, proc.returncode, out)


def job_returns(proc: subprocess.CompletedProcess) -> List[Dict[str, Any]]:
    assert proc.returncode == 0, proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("JOB RETURNS ")]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0][len("JOB RETURNS ") :])


def test_started_from_command_line_only_inside_hydras_command_line_entry(tmp_path: Path, monkeypatch) -> None:
    """Hydra's `_run_hydra` on the stack, with the arguments parsed from this command line."""
    from hydra._internal.utils import _run_hydra, get_args_parser
    from hydra.core.singleton import Singleton

    from hydra_plugins.vertex_pipelines_launcher._context import started_from_command_line

    monkeypatch.chdir(tmp_path)
    argv = [
        "+x=1",
        f"hydra.run.dir={tmp_path}",
        "hydra.output_subdir=null",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
        "hydra.job.chdir=false",
    ]
    seen: Dict[str, bool] = {}

    def task(cfg: Any) -> None:
        seen["same"] = started_from_command_line(argv)
        seen["other"] = started_from_command_line([*argv[:-1], "+y=2"])

    state = Singleton.get_state()  # Hydra's globals must not leak to other tests
    args_parser = get_args_parser()
    try:
        _run_hydra(
            args=args_parser.parse_args(argv),
            args_parser=args_parser,
            task_function=task,
            config_path=str(tmp_path),
            config_name=None,
        )
    finally:
        Singleton.set_state(state)
    assert seen == {"same": True, "other": False}
    assert not started_from_command_line(argv)  # outside it


@pytest.mark.slow  # sweeps of real apps in subprocesses
def test_hydra_zen_launch_returns_what_the_basic_launcher_returns(tmp_path: Path) -> None:
    """hydra-zen's own multirun example, its task function in the launching script."""
    app = APPS / "zen" / "app.py"
    runs = {"basic": [], "local": LOCAL_MODE}
    with ThreadPoolExecutor(2) as pool:
        done = {
            mode: pool.submit(run_script, app, [*extra, f"hydra.sweep.dir={tmp_path / mode / 'sweep'}"], tmp_path / mode)
            for mode, extra in runs.items()
        }
        basic, local = (job_returns(done[mode].result()[1]) for mode in runs)
    assert [r["status"] for r in basic] == ["COMPLETED"] * 3
    assert local == basic


def callback_views(tmp_path: Path, entry: str) -> Tuple[int, List[Dict[str, Any]]]:
    args = [
        "--multirun", "+x=1,2", "+hydra.callbacks.state._target_=state_callback.SweepState",
        f"hydra.sweep.dir={tmp_path / entry / 'sweep'}", *LOCAL_MODE, f"hydra.launcher.trial.entry={entry}",
    ]  # fmt: skip
    pid, proc = run_script(APPS / "callback_state" / "app.py", args, tmp_path / entry)
    assert proc.returncode == 0, proc.stdout
    return pid, [json.loads((tmp_path / entry / "sweep" / str(n) / "callback.json").read_text()) for n in (0, 1)]


@pytest.mark.slow  # sweeps of real apps in subprocesses
def test_callbacks_in_command_and_pickled_trials(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        command, pickled = pool.map(lambda entry: callback_views(tmp_path, entry), ["command", "pickle"])
    launcher, seen = command
    for view in seen:  # built in the trial, which never saw on_multirun_start
        assert view["built_in"] == view["job_ended_in"] != launcher
        assert view["multirun_started_in"] is None
    launcher, seen = pickled
    for view in seen:  # the launching process's callback, as on_multirun_start left it
        assert view["built_in"] == view["multirun_started_in"] == launcher != view["job_ended_in"]
