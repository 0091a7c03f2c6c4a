"""Every trial task goes through gcpc's own launcher code and aiplatform's CustomJob proto
before its processes start: what runs here is the job Vertex would receive."""

import io
import json
import traceback

import pytest

from hydra_vertex_pipelines.pipeline_builder.local import CustomJobChecker, CustomJobRejected, LocalRunner, RunnerSettings
from hydra_vertex_pipelines.pipeline_builder.local.resolver import executor_input, fill
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
from test_local_runner import compile_sweep, trial

# Writes what the replica sees into the trial's folder (its argument, a /gcs/ path).
REPORT = (
    "import json, os, sys\n"
    "keys = ('CLUSTER_SPEC', 'TF_CONFIG', 'CLOUD_ML_JOB_ID', 'AIP_MODEL_DIR')\n"
    "seen = {k: os.environ.get(k) for k in keys}\n"
    "json.dump(seen, open(os.path.join(sys.argv[1], 'env-' + os.environ.get('RANK', 'x') + '.json'), 'w'))\n"
)


def run(tmp_path, spec):
    return LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO()).run()


def trial_tasks(spec):
    return [t for t in spec["root"]["dag"]["tasks"].values() if "worker_pool_specs" in t["inputs"]["parameters"]]


def constants(task):
    return task["inputs"]["parameters"]


def test_replicas_start_from_the_job_gcpc_would_create(tmp_path):
    spec = compile_sweep(
        tmp_path, [trial(0, TrialSettings(image_uri="img", replica_count=2), ["python", "-c", REPORT], ["/gcs/b/run/0"])]
    )
    result = run(tmp_path, spec)
    job = next(t for t in result.tasks.values() if t.kind == "custom_job")
    assert job.state == "SUCCEEDED", job.error
    out = tmp_path / "gcs" / "b" / "run" / "0"
    chief = json.loads((out / "env-0.json").read_text())
    cluster_spec = json.loads(chief["CLUSTER_SPEC"])
    # The job Vertex would get: int64 fields as the proto's JSON writes them, no empty values.
    pools = cluster_spec["job"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == ["1", "1"]
    assert pools[0]["container_spec"]["args"] == ["/gcs/b/run/0"]
    assert cluster_spec["job"]["scheduling"]["timeout"] == "604800s"
    assert "max_wait_duration" not in cluster_spec["job"]["scheduling"]  # gcpc clears it unless FLEX_START
    gcp_resources = json.loads((tmp_path / "work" / job.name / "outputs" / "gcp_resources").read_text())
    assert gcp_resources["resources"][0]["resourceUri"].endswith(f"/customJobs/{chief['CLOUD_ML_JOB_ID']}")


def test_an_empty_pool_is_dropped_and_the_next_one_shifts_as_on_vertex(tmp_path):
    spec = compile_sweep(tmp_path, [trial(0, TrialSettings(image_uri="img"), ["python", "-c", REPORT], ["/gcs/b/run/0"])])
    pools = constants(trial_tasks(spec)[0])["worker_pool_specs"]["runtimeValue"]["constant"]
    chief = pools[0]
    pools[:] = [chief, {}, {**chief, "replica_count": 1}]  # parameter servers after an empty worker pool
    result = run(tmp_path, spec)
    assert all(t.state == "SUCCEEDED" for t in result.tasks.values())
    seen = json.loads((tmp_path / "gcs" / "b" / "run" / "0" / "env-1.json").read_text())
    # gcpc's recursive_remove_empty dropped pool 1, so the parameter server runs as a worker.
    assert json.loads(seen["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}
    assert json.loads(seen["CLUSTER_SPEC"])["task"] == {"type": "workerpool1", "index": 0}


def _gcpc_error(spec, task_name, runner):
    """The error gcpc's own code raises for the task's payload, in this process."""
    from google_cloud_pipeline_components.container.v1.custom_job import remote_runner

    container = runner.plan.planned[task_name].container
    payload = container["args"][container["args"].index("--payload") + 1]
    given = executor_input(runner.plan.inputs(task_name), {})
    with pytest.raises(Exception) as raised:
        remote_runner.insert_system_labels_into_payload(fill(payload, given))
    return traceback.format_exception_only(raised.type, raised.value)[-1].strip()


def test_a_payload_gcpc_rejects_fails_its_task_with_gcpcs_error(tmp_path):
    settings = TrialSettings(image_uri="img")
    spec = compile_sweep(tmp_path, [trial(n, settings, ["python", "-c", "pass"], []) for n in range(2)])
    bad = trial_tasks(spec)[0]
    constants(bad)["display_name"]["runtimeValue"]["constant"] = 'msg="hello world"'  # pasted raw into JSON
    runner = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"), console=io.StringIO())
    name = next(n for n, p in runner.plan.planned.items() if p.spec is bad)
    expected = _gcpc_error(spec, name, runner)
    assert expected.startswith("json.decoder.JSONDecodeError: Expecting ")
    result = runner.run()
    assert result.tasks[name].state == "FAILED"
    assert expected in result.tasks[name].error
    assert result.tasks[name].output_dir == str(tmp_path / "gcs" / "b" / "run" / "0")  # how the launcher finds its trial
    others = [t for n, t in result.tasks.items() if n != name]
    assert all(t.state == "SUCCEEDED" for t in others)  # the other trial and the collector


def test_a_field_the_proto_lacks_fails_its_task(tmp_path):
    spec = compile_sweep(tmp_path, [trial(0, TrialSettings(image_uri="img"), ["python", "-c", "pass"], [])])
    pools = constants(trial_tasks(spec)[0])["worker_pool_specs"]["runtimeValue"]["constant"]
    pools[0]["replica_cuont"] = 1
    result = run(tmp_path, spec)
    job = next(t for t in result.tasks.values() if t.kind == "custom_job")
    assert job.state == "FAILED" and "replica_cuont" in job.error and not job.log_paths


def test_the_checker_inserts_system_labels_and_refuses_other_job_types(tmp_path):
    checker = CustomJobChecker()
    try:
        payload = json.dumps(
            {
                "display_name": "d",
                "job_spec": {
                    "worker_pool_specs": [
                        {
                            "replica_count": 1,
                            "machine_spec": {"machine_type": "n1-standard-4"},
                            "container_spec": {"image_uri": "i"},
                        }
                    ],
                    "scheduling": {"strategy": "FLEX_START", "max_wait_duration": "60s"},
                },
                "labels": {"mine": "x"},
            }
        )
        argv = [
            "--type",
            "CustomJob",
            "--payload",
            payload,
            "--project",
            "p",
            "--location",
            "l",
            "--gcp_resources",
            str(tmp_path / "r"),
        ]
        checked = checker.check(argv, {"vertex-ai-pipelines-run-billing-id": "7"}, "42")
        assert checked["name"] == "projects/p/locations/l/customJobs/42"
        assert checked["job"]["labels"] == {"mine": "x", "vertex-ai-pipelines-run-billing-id": "7"}
        assert checked["job"]["job_spec"]["scheduling"]["max_wait_duration"] == "60s"  # kept for FLEX_START
        with pytest.raises(CustomJobRejected, match="Incorrect job type: BatchPredictionJob"):
            checker.check([*argv[:1], "BatchPredictionJob", *argv[2:]], {}, "43")
        with pytest.raises(CustomJobRejected, match="Invalid control character"):
            checker.check([*argv[:3], payload.replace('"d"', '"line\nbreak"'), *argv[4:]], {}, "44")
    finally:
        checker.close()
    assert checker.helper.proc.returncode == 0
