"""The emulator's JobService, and CustomJob tasks run by gcpc's real launcher against it.

Sweeps are submitted with the real google-cloud-aiplatform client; each trial task runs
`python3 -u -m google_cloud_pipeline_components.container.v1.custom_job.launcher ...`,
whose CreateCustomJob and GetCustomJob reach the emulator, and the jobs it created are
read back with `aiplatform.CustomJob.list()`.
"""

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hydra.core.utils import JobStatus

from conftest import APPS, CLI, launch_in_process, read_json, submit_overrides, wait_for

pytestmark = pytest.mark.slow  # starts the emulators

FAULTS = APPS / "faults"
COMMAND_ENTRY = ["hydra.launcher.trial.entry=command", f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"]
JOBS = "/v1/projects/local/locations/us-central1/customJobs"


def _sdk(emulators: Dict[str, Any]) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(
        project="local",
        location="us-central1",
        api_endpoint=emulators["api_endpoint"],
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    return aiplatform


def _listed(emulators: Dict[str, Any], run_id: str) -> List[Any]:
    """The CustomJobs of one pipeline run, as the SDK lists them."""
    vertex = emulators["vertex"]
    billing = vertex.runs[run_id].runner.system_labels()["vertex-ai-pipelines-run-billing-id"]
    jobs = _sdk(emulators).CustomJob.list()
    return [j for j in jobs if j.labels.get("vertex-ai-pipelines-run-billing-id") == billing]


def _post(emulators: Dict[str, Any], path: str, body: Any) -> Any:
    request = urllib.request.Request(
        emulators["api_endpoint"] + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_sweep_runs_through_gcpc_launcher_and_lists_its_jobs(emulators, tmp_path):
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY]
    returns = launch_in_process(FAULTS / "conf", overrides, [["x=1"], ["x=raise"], ["x=3"]])
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert [returns[i].return_value for i in (0, 2)] == [1.0, 3.0]
    manifest = read_json(tmp_path / "manifest.json")
    run = emulators["vertex"].runs[manifest["run_id"]]
    jobs = _listed(emulators, manifest["run_id"])
    shown = {t["display_name"]: t for t in manifest["trials"]}
    assert sorted(j.display_name for j in jobs) == sorted(shown)
    states = {j.display_name: j.state.name for j in jobs}
    assert states == {
        t["display_name"]: "JOB_STATE_FAILED" if "raise" in name else "JOB_STATE_SUCCEEDED" for name, t in shown.items()
    }
    failed = next(j for j in jobs if j.state.name == "JOB_STATE_FAILED")
    assert "exited with a non-zero status of 1" in failed.error.message
    # The task's CustomJob is the one gcpc's launcher created and wrote in gcp_resources.
    details = {d["taskName"]: d for d in run.view()["jobDetail"]["taskDetails"]}
    named = {d["executorDetail"]["customJobDetail"]["job"] for d in details.values() if "executorDetail" in d}
    assert named == {j.resource_name for j in jobs}
    for task in run.runner.tasks.values():
        if task.kind == "custom_job":
            log = Path(task.log_paths[-1]).read_text()
            assert task.log_paths[-1].endswith("launcher.log") and "Traceback" not in log or task.state == "FAILED"
            labels = next(j.labels for j in jobs if j.resource_name in task.outputs["parameterValues"]["gcp_resources"])
            assert labels["hydra-run"] == manifest["run_id"]  # the trial's own labels, and the system label


def test_cancelling_the_pipeline_cancels_its_custom_job_and_stops_its_process(emulators, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *submit_overrides(emulators),
        *COMMAND_ENTRY,
        f"++hydra.launcher.trial.env.PID_DIR={pid_dir}",
    ]
    box: Dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(r=launch_in_process(FAULTS / "conf", overrides, [["x=hang"]])))
    thread.start()
    wait_for(lambda: any(pid_dir.iterdir()))
    run_id = read_json(tmp_path / "sweep" / "manifest.json")["run_id"]
    run = emulators["vertex"].runs[run_id]
    (job,) = _listed(emulators, run_id)
    assert job.state.name == "JOB_STATE_RUNNING"
    _sdk(emulators).PipelineJob.get(run.resource["name"]).cancel()
    pid = int(next(pid_dir.iterdir()).name)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10)
    thread.join(timeout=60)
    (job,) = _listed(emulators, run_id)
    assert job.state.name == "JOB_STATE_CANCELLED"
    assert run.view()["state"] == "PIPELINE_STATE_CANCELLED"
    assert box["r"][0].status == JobStatus.FAILED


def test_timeout_fails_the_job_as_vertex_does(emulators, tmp_path):
    overrides = [f"hydra.sweep.dir={tmp_path}", *submit_overrides(emulators), *COMMAND_ENTRY, "hydra.launcher.trial.timeout=2s"]
    start = time.time()
    (result,) = launch_in_process(FAULTS / "conf", overrides, [["x=1", "+sleep=60"]])
    assert time.time() - start < 50
    assert result.status == JobStatus.FAILED
    run_id = read_json(tmp_path / "manifest.json")["run_id"]
    (job,) = _listed(emulators, run_id)
    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.code == 4 and "timeout of 2s" in job.error.message
    (task,) = [t for t in emulators["vertex"].runs[run_id].runner.tasks.values() if t.kind == "custom_job"]
    assert task.state == "FAILED" and "timeout of 2s" in task.error
    # The trial left no record: its kind is read from its CustomJob's error, everywhere.
    with pytest.raises(Exception, match=r"Trial 0 \(x=1 \+sleep=60\) failed \[timeout\]: "):
        _ = result.return_value
    (row,) = read_json(tmp_path / "summary.json")["trials"]
    assert row["failure"] == {"kind": "timeout", "code": 4, "message": job.error.message, "source": "custom_job"}
    assert row["attempts"] == [{"attempt": 1, "status": "MISSING", "failure": row["failure"]}]
    page = (tmp_path / "report.html").read_text()
    assert '<span class="kind" title="from its CustomJob&#x27;s error, code 4">[timeout]</span>' in page
    vertex = emulators["vertex"]
    before = dict(vertex.requests)
    shown = subprocess.run([CLI, "results", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "[timeout] The job ran past its timeout of 2s" in shown, shown
    assert vertex.requests == before  # the launcher's summary already says why
    # A summary as the collector alone wrote it (the launcher did not follow the run):
    # `results` reads the CustomJob's error itself.
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    uri = read_json(tmp_path / "manifest.json")["run_root"] + "/summary.json"
    summary = read_json(tmp_path / "summary.json")
    summary["trials"][0]["failure"] = {"kind": "unknown", "code": None, "message": "", "source": "none"}
    gcs.write_bytes(gcs.client("local"), uri, json.dumps(summary).encode())
    shown = subprocess.run([CLI, "results", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "[timeout] The job ran past its timeout of 2s" in shown, shown
    made = {k: n - before.get(k, 0) for k, n in vertex.requests.items() if n != before.get(k, 0)}
    assert made == {("GET", "get"): 1, ("GET", "custom_job_get"): 1}  # the run, and its one failed CustomJob
    assert read_json(tmp_path / "summary.json")["trials"][0]["failure"]["source"] == "custom_job"


def test_create_refuses_a_body_that_is_not_a_custom_job(emulators):
    status, reply = _post(
        emulators, JOBS, {"displayName": "x", "jobSpec": {"workerPoolSpecs": [{"replicaCount": 1, "containerSpek": {}}]}}
    )
    assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"
    assert 'has no field named "containerSpek"' in reply["error"]["message"]
    status, reply = _post(emulators, JOBS, {"displayName": "x", "jobSpec": {"workerPoolSpecs": [{"replicaCount": "many"}]}})
    assert status == 400 and "replicaCount" in reply["error"]["message"]


def test_jobs_created_through_the_api_run_list_in_pages_and_survive_a_restart(emulators, tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.emulator.custom_jobs import JobService

    vertex = emulators["vertex"]
    body = {
        "displayName": "api-job",
        "jobSpec": {
            "workerPoolSpecs": [
                {
                    "replicaCount": "1",
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "containerSpec": {
                        "imageUri": "img",
                        "command": ["python", "-c", "import os; print(os.environ['CLOUD_ML_JOB_ID'])"],
                    },
                }
            ]
        },
    }
    names = [_post(emulators, JOBS, body)[1]["name"] for _ in range(3)]
    wait_for(lambda: all(vertex.job_service.jobs[n].state == "JOB_STATE_SUCCEEDED" for n in names))
    assert Path(vertex.job_service.jobs[names[0]].logs[0]).read_text().strip() == names[0].rsplit("/", 1)[1]
    status, page = vertex.job_service.list("projects/local/locations/us-central1", {"pageSize": ["2"]})
    assert status == 200 and len(page["customJobs"]) == 2 and page["nextPageToken"]
    listed = {j.resource_name for j in _sdk(emulators).CustomJob.list()}
    assert set(names) <= listed
    status, reply = _post(emulators, f"/v1/{names[0]}:cancel", {})
    assert status == 400 and reply["error"]["status"] == "FAILED_PRECONDITION"  # it has ended
    again = JobService(vertex.job_service.folder, vertex.workdir, vertex.job_service.interpreter)
    assert {n: again.jobs[n].state for n in names} == {n: "JOB_STATE_SUCCEEDED" for n in names}
