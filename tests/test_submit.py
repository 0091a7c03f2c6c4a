"""Submit mode against local emulators: the real google-cloud-aiplatform and
google-cloud-storage clients, talking to servers on 127.0.0.1."""

import json
import os
import subprocess
import sys
import time

import pytest
from hydra.core.utils import JobStatus

from conftest import APPS, QUICKSTART, REPO, launch_in_process, read_json, run_app, submit_overrides, wait_for

FAULTS = APPS / "faults"
COMMAND_ENTRY = ["hydra.launcher.trial.entry=command", f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"]


def storage():
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    return gcs.client("local")


@pytest.mark.slow
def test_four_trials_one_raises(emulators, tmp_path):
    jobs = [["x=1"], ["x=raise"], ["x=3"], ["x=4"]]
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY]
    returns = launch_in_process(FAULTS / "conf", overrides, jobs)
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert [returns[i].return_value for i in (0, 2, 3)] == [1.0, 3.0, 4.0]
    # the configs the basic launcher's JobReturn holds, composed as it composes them
    assert [r.cfg.x for r in returns] == [1, "raise", 3, 4]
    assert [r.hydra_cfg.hydra.job.num for r in returns] == [0, 1, 2, 3]
    assert returns[2].hydra_cfg.hydra.job.id == "2" and "hydra" not in returns[2].cfg
    with pytest.raises(Exception, match="ValueError: bad x"):
        _ = returns[1].return_value
    manifest = read_json(tmp_path / "manifest.json")
    resource = manifest["vertex"]["resource_name"]
    assert resource == f"projects/local/locations/us-central1/pipelineJobs/{manifest['run_id']}"
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    summary = gcs.read_json(storage(), f"{manifest['run_root']}/summary.json")  # on the emulated bucket
    assert summary["counts"] == {"COMPLETED": 3, "FAILED": 1}
    local = read_json(tmp_path / "summary.json")  # brought back to the sweep dir, with the CustomJobs' hours
    assert local["usage"]["from_trial_records"] == summary["usage"]["totals"]
    for row in local["trials"]:
        row["usage"] = row.pop("usage_from_record")
    assert {**local, "usage": summary["usage"]} == summary
    report = gcs.read_bytes(storage(), f"{manifest['run_root']}/report.html")
    assert b'id="trial-1"' in report and b'id="trial-1"' in (tmp_path / "report.html").read_bytes()  # the failed trial too
    job = emulators["vertex"].runs[manifest["run_id"]].view()
    assert job["state"] == "PIPELINE_STATE_FAILED"
    assert job["labels"]["hydra-run"] == manifest["run_id"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://sweeps/runs"


@pytest.mark.slow
@pytest.mark.parametrize("loop", [[], ["hydra.launcher.max_parallel=2"]], ids=["tasks", "loop"])
def test_a_trial_that_dies_gets_vertex_error(emulators, tmp_path, loop):
    jobs = [["x=1"], ["x=sigkill"]]
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY, *loop]
    returns = launch_in_process(FAULTS / "conf", overrides, jobs)
    assert returns[0].return_value == 1.0
    with pytest.raises(Exception) as e:
        _ = returns[1].return_value
    assert "Trial 1 (x=sigkill) failed [app]: it left no .vertex/result.json" in str(e.value)
    assert "killed by signal SIGKILL" in str(e.value)
    # The kind comes from the CustomJob's error: its replica exited non-zero (code 3).
    failure = read_json(tmp_path / "summary.json")["trials"][1]["failure"]
    assert (failure["kind"], failure["source"], failure["code"]) == ("app", "custom_job", 3)
    assert failure["message"].startswith("The replica workerpool0-0 exited with a non-zero status of -9")


@pytest.mark.slow
def test_create_retried_after_a_lost_answer_makes_one_job(emulators, tmp_path):
    vertex = emulators["vertex"]
    before = vertex.requests[("POST", "create")]
    vertex.faults["drop_create_response"] = 1
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=2"]])
    assert returns[0].return_value == 2.0
    run_id = read_json(tmp_path / "manifest.json")["run_id"]
    assert vertex.requests[("POST", "create")] - before == 2  # the lost one and the retry
    assert [r for r in vertex.runs if r == run_id] == [run_id]
    assert sum(1 for r in vertex.runs if r.startswith(run_id)) == 1


@pytest.mark.slow
def test_thirty_trials_cost_requests_per_poll_not_per_trial(emulators, tmp_path):
    vertex = emulators["vertex"]
    before = dict(vertex.requests)
    jobs = [[f"x={i}"] for i in range(30)]
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        *submit_overrides(emulators),
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{APPS / 'instant.py'}]",
    ]
    start = time.time()
    returns = launch_in_process(FAULTS / "conf", overrides, jobs)
    elapsed = time.time() - start
    assert [r.return_value for r in returns] == [2.0 * i for i in range(30)]
    made = {k: v - before.get(k, 0) for k, v in vertex.requests.items()}
    assert made[("POST", "create")] == 1
    assert made.get(("GET", "list"), 0) == 0
    # The CustomJobs' hours: one list of them, in pages of 100 (the emulator lists every job it ran).
    assert 1 <= made[("GET", "custom_job_list")] <= len(vertex.job_service.jobs) // 100 + 1
    gets = made[("GET", "get")]
    # One GET per poll, whatever the trial count: a GET per trial would cost 30 per poll,
    # far above one per 0.5 s however slow the machine is.
    assert 1 <= gets <= elapsed / 0.5 + 3, f"{gets} GETs in {elapsed:.1f} s at one poll per 0.5 s"


def test_missing_project_is_a_clear_error(tmp_path):
    proc = run_app(
        QUICKSTART,
        ["-m", "hydra.launcher.mode=submit", "hydra.launcher.project=null", f"hydra.sweep.dir={tmp_path}", "lr=0.1"],
        check=False,
        GOOGLE_APPLICATION_CREDENTIALS="",
    )
    assert proc.returncode == 1
    assert "hydra.launcher.project=null is not accepted: a Google Cloud project id" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pipeline.yaml").exists()


def test_missing_credentials_say_how_to_set_them_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_APPLICATION_CREDENTIALS",)}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True", HYDRA_FULL_ERROR="0")
    proc = subprocess.run(
        [
            sys.executable,
            str(QUICKSTART),
            "-m",
            "hydra.launcher.mode=submit",
            "hydra.launcher.project=p",
            f"hydra.sweep.dir={tmp_path / 's'}",
            "lr=0.1",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "No Google Cloud credentials" in proc.stderr
    assert "gcloud auth application-default login" in proc.stderr
    assert ".." not in proc.stderr.replace("...", "")
    assert "Traceback" not in proc.stderr


def test_missing_project_and_credentials_are_said_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True", HYDRA_FULL_ERROR="0")
    proc = subprocess.run(
        [sys.executable, str(QUICKSTART), "-m", "hydra.launcher.mode=submit", f"hydra.sweep.dir={tmp_path / 's'}", "lr=0.1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "hydra.launcher.project=null is not accepted: a Google Cloud project id" in proc.stderr
    assert "Also: No Google Cloud credentials" in proc.stderr and "gcloud auth application-default login" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "pipeline.yaml").exists()
    assert not (tmp_path / "s" / "pipeline.yaml").exists()


@pytest.mark.slow
def test_status_results_and_cancel_commands(emulators, tmp_path):
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY]
    launch_in_process(FAULTS / "conf", overrides, [["x=5"], ["x=6"]])
    env = {**os.environ}
    status = subprocess.run(
        [sys.executable, "-m", "hydra_vertex_pipelines.pipeline_builder", "status", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    assert "PIPELINE_STATE_SUCCEEDED" in status.stdout
    results = subprocess.run(
        [sys.executable, "-m", "hydra_vertex_pipelines.pipeline_builder", "results", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert results.returncode == 0, results.stderr
    assert "COMPLETED" in results.stdout and "x=6" in results.stdout and "6.0" in results.stdout
    cancel = subprocess.run(
        [sys.executable, "-m", "hydra_vertex_pipelines.pipeline_builder", "cancel", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    # The run has ended: there is nothing to cancel, and the command says so.
    assert cancel.returncode == 1, cancel.stderr
    assert "already ended (PIPELINE_STATE_SUCCEEDED): nothing to cancel" in cancel.stdout


@pytest.mark.slow
def test_wait_false_returns_after_submission(emulators, tmp_path):
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY, "hydra.launcher.wait=false"]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=7"]])
    assert returns[0].status == JobStatus.COMPLETED and returns[0].return_value is None
    run_id = read_json(tmp_path / "manifest.json")["run_id"]
    assert run_id in emulators["vertex"].runs


@pytest.mark.slow
def test_cancelled_run_gives_every_trial_a_truthful_status(emulators, tmp_path):
    import threading

    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *submit_overrides(emulators),
        *COMMAND_ENTRY,
        f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",  # the trial's environment is the CustomJob's
    ]
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=launch_in_process(FAULTS / "conf", overrides, [["x=1"], ["x=hang"]])))
    thread.start()
    wait_for(lambda: any(pid_dir.iterdir()))
    run_id = read_json(tmp_path / "sweep" / "manifest.json")["run_id"]
    run = emulators["vertex"].runs[run_id]
    wait_for(lambda: run.runner.tasks["custom-training-job"].state == "SUCCEEDED")
    from google.cloud import aiplatform

    aiplatform.PipelineJob.get(run.resource["name"]).cancel()  # as another person would, from the SDK
    thread.join(timeout=60)
    returns = box["r"]
    assert returns[0].status == JobStatus.COMPLETED and returns[0].return_value == 1.0
    assert returns[1].status == JobStatus.FAILED
    with pytest.raises(Exception, match="its task ended CANCELLED"):
        _ = returns[1].return_value
    assert run.view()["state"] == "PIPELINE_STATE_CANCELLED"
    pid = int(next(pid_dir.iterdir()).name)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10)


@pytest.mark.slow
def test_ctrl_c_while_waiting_leaves_the_run_going(emulators, tmp_path):
    import signal

    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(FAULTS / "app.py"),
            "-m",
            "x=hang",
            f"hydra.sweep.dir={sweep}",
            *submit_overrides(emulators),
            f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: any(pid_dir.iterdir()))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Stopped following. The run goes on in Vertex AI" in out
    assert f"hydra-vertex-pipelines cancel {sweep}" in out
    assert "Traceback" not in out
    manifest = read_json(sweep / "manifest.json")
    run = emulators["vertex"].runs[manifest["run_id"]]
    assert run.view()["state"] == "PIPELINE_STATE_RUNNING"
    cancel = subprocess.run(
        [sys.executable, "-m", "hydra_vertex_pipelines.pipeline_builder", "cancel", str(sweep)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert cancel.returncode == 0, cancel.stderr
    wait_for(lambda: run.view()["state"] == "PIPELINE_STATE_CANCELLED")


@pytest.mark.slow
def test_emulator_command_serves_both_apis(tmp_path):
    import re
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hydra_vertex_pipelines.pipeline_builder",
            "emulator",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
            "--gcs-port",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        match = re.search(
            r"Vertex AI emulator on (http://127\.0\.0\.1:\d+), Cloud Storage emulator on (http://127\.0\.0\.1:\d+)", first
        )
        assert match, first
        vertex_url, gcs_url = match.groups()
        with urllib.request.urlopen(f"{vertex_url}/v1/projects/p/locations/us-central1/pipelineJobs") as r:
            assert json.loads(r.read()) == {"pipelineJobs": []}
        with urllib.request.urlopen(f"{gcs_url}/storage/v1/b?project=p") as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _triple(cfg):
    return cfg.x * 3


@pytest.mark.slow
def test_pickled_jobs_travel_through_the_bucket(emulators, tmp_path):
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators)]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=2"], ["x=5"]], _triple)
    assert [r.return_value for r in returns] == [6, 15]
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    manifest = read_json(tmp_path / "manifest.json")
    assert gcs.read_bytes(storage(), f"{manifest['trials'][0]['output_uri']}/.vertex/job.pkl") is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,message",
    [
        ("hydra.launcher.pipeline_root=null", "hydra.launcher.pipeline_root=null is not accepted: a gs:// URI"),
        ("hydra.launcher.location=''", "hydra.launcher.location='' is not accepted: a Vertex AI region"),
        ("hydra.launcher.failure_policy=never", "hydra.launcher.failure_policy='never' is not accepted: one of fast, slow"),
        ("hydra.launcher.poll_interval=0", "hydra.launcher.poll_interval=0.0 is not accepted: null or a number of seconds > 0"),
    ],
)
def test_bad_submit_settings_stop_before_any_request(emulators, tmp_path, override, message):
    vertex = emulators["vertex"]
    before = sum(vertex.requests.values())
    proc = run_app(
        QUICKSTART, ["-m", *submit_overrides(emulators), override, f"hydra.sweep.dir={tmp_path}", "lr=0.1"], check=False
    )
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sum(vertex.requests.values()) == before
    assert not (tmp_path / "pipeline.yaml").exists()


@pytest.mark.slow
def test_run_is_associated_with_its_experiment(emulators, tmp_path):
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        *submit_overrides(emulators),
        *COMMAND_ENTRY,
        "hydra.launcher.experiment=lr-study",
    ]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=1"], ["x=2"]])
    assert [r.return_value for r in returns] == [1.0, 2.0]
    resource = read_json(tmp_path / "manifest.json")["vertex"]["resource_name"]
    store = "projects/local/locations/us-central1/metadataStores/default"
    experiment = emulators["vertex"].metadata.contexts[f"{store}/contexts/lr-study"]
    assert experiment["schemaTitle"] == "system.Experiment"
    run_context = f"{store}/contexts/{resource.rsplit('/', 1)[1]}"
    run_id = read_json(tmp_path / "manifest.json")["run_id"]
    trials = [f"{store}/contexts/lr-study-{run_id}-t{n}" for n in (0, 1)]  # each trial, as an experiment run
    assert sorted(emulators["vertex"].metadata.children[f"{store}/contexts/lr-study"]) == sorted([run_context, *trials])
