"""The CustomJob check's verdicts kept on disk: a stored verdict is what gcpc's launcher code
gave for the same payload (this run's own values put back), a changed payload is checked
again by the helper, and a refused payload stays refused with the same error."""

import io
import json

import pytest

from hydra_vertex_pipelines.pipeline_builder.local import (
    CheckCache,
    CustomJobChecker,
    CustomJobRejected,
    LocalRunner,
    RunnerSettings,
    cache_folder,
)
from hydra_vertex_pipelines.pipeline_builder.local import check_cache as check_cache_module
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
from test_custom_job_check import constants, trial_tasks
from test_local_runner import compile_sweep, trial

# Two runs of one sweep: their run ids, billing labels and CustomJob ids, as a local run makes them.
RUN_A, BILLING_A, JOB_A = "train-20261205-013157-3dedaf", "1796433584293", "1796433584293001"
RUN_B, BILLING_B, JOB_B = "train-20261205-014410-9c01aa", "1796433999111", "1796433999111001"


def argv(run_id, machine_type="n1-standard-4", job_type="CustomJob", display_name=None):
    """gcpc launcher arguments of a trial of run `run_id`: the run id in its display name,
    labels, arguments and output folder, as the launcher's trials carry it. A
    `display_name` is pasted into the payload's JSON as it is, as the compiled template
    pastes its parameter."""
    payload = {
        "display_name": "NAME",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "replica_count": 1,
                    "machine_spec": {"machine_type": machine_type},
                    "container_spec": {"image_uri": "i", "args": ["--run-id", run_id]},
                }
            ],
            "base_output_directory": {"output_uri_prefix": f"gs://b/{run_id}/0"},
        },
        "labels": {"hydra-run": run_id},
    }
    return [
        "--type",
        job_type,
        "--payload",
        json.dumps(payload).replace("NAME", display_name or f"train-0 lr=0.1 {run_id}"),
        "--project",
        "p",
        "--location",
        "l",
        "--gcp_resources",
        f"/w/{run_id}/r",
    ]


def labels(billing):
    return {"vertex-ai-pipelines-run-billing-id": billing}


@pytest.fixture(scope="module")
def reference():
    """Checks without a cache: what gcpc's launcher code says."""
    checker = CustomJobChecker()
    yield checker
    checker.close()


def cached(folder, run_id, eager=False):
    return CustomJobChecker(cache=CheckCache(folder, [run_id], sweep="s"), eager=eager)


def test_a_stored_verdict_is_the_helpers_for_this_runs_values(tmp_path, reference):
    first = cached(tmp_path, RUN_A, eager=True)
    try:
        assert first.check(argv(RUN_A), labels(BILLING_A), JOB_A)["job"]["labels"]["hydra-run"] == RUN_A
        assert first.checked == 1 and first.cache.misses == 1
    finally:
        first.close()
    assert first.cache.expects_hits()  # the next run of this sweep starts no helper at first

    again = cached(tmp_path, RUN_B)
    try:
        got = again.check(argv(RUN_B), labels(BILLING_B), JOB_B)
        assert not again.started and again.cache.hits == 1  # answered without the helper
    finally:
        again.close()
    assert got == reference.check(argv(RUN_B), labels(BILLING_B), JOB_B)  # exactly the helper's reply
    assert got["name"] == "projects/p/locations/l/customJobs/" + JOB_B
    assert got["job"]["labels"] == {"hydra-run": RUN_B, "vertex-ai-pipelines-run-billing-id": BILLING_B}


def test_a_changed_payload_is_checked_again(tmp_path, reference):
    first = cached(tmp_path, RUN_A, eager=True)
    first.check(argv(RUN_A), labels(BILLING_A), JOB_A)
    first.close()
    changed = cached(tmp_path, RUN_B)
    try:
        got = changed.check(argv(RUN_B, machine_type="n1-highmem-8"), labels(BILLING_B), JOB_B)
        assert changed.started and changed.checked == 1 and changed.cache.misses == 1
    finally:
        changed.close()
    assert got == reference.check(argv(RUN_B, machine_type="n1-highmem-8"), labels(BILLING_B), JOB_B)
    assert got["job"]["job_spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "n1-highmem-8"


def test_a_refused_payload_stays_refused_with_a_warm_cache(tmp_path):
    bad = argv(RUN_A, display_name='msg="hello" ' + RUN_A)  # pasted raw into the payload's JSON
    first = cached(tmp_path, RUN_A, eager=True)
    with pytest.raises(CustomJobRejected) as cold:
        first.check(bad, labels(BILLING_A), JOB_A)
    first.close()
    again = cached(tmp_path, RUN_B)
    with pytest.raises(CustomJobRejected) as warm:
        again.check(argv(RUN_B, display_name='msg="hello" ' + RUN_B), labels(BILLING_B), JOB_B)
    again.close()
    assert not again.started
    assert str(warm.value) == str(cold.value) and str(cold.value).startswith("json.decoder.JSONDecodeError: Expecting ")


def test_other_installed_versions_miss(tmp_path, monkeypatch):
    first = cached(tmp_path, RUN_A, eager=True)
    first.check(argv(RUN_A), labels(BILLING_A), JOB_A)
    first.close()
    monkeypatch.setattr(check_cache_module, "_versions", '{"google-cloud-pipeline-components": "another"}')
    cache = CheckCache(tmp_path, [RUN_B], sweep="s")
    assert cache.get(argv(RUN_B), labels(BILLING_B), JOB_B) is None and not cache.expects_hits()


def test_the_cache_lives_in_the_user_cache_dir_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(check_cache_module.SWITCH, raising=False)
    assert cache_folder() == tmp_path / "hydra-vertex-pipelines-launcher" / "custom-job-checks"
    monkeypatch.setenv(check_cache_module.SWITCH, "0")
    assert cache_folder() is None


def _run(tmp_path, spec, name, folder):
    """One run of `spec` with a checker on the cache in `folder`, as local mode runs it."""
    work = tmp_path / name
    checker = CustomJobChecker(cache=CheckCache(folder, [str(work)]), eager=False)
    settings = RunnerSettings(PathMap(str(tmp_path / "gcs")), work)
    try:
        result = LocalRunner(spec, settings, console=io.StringIO(), custom_job_checker=checker).run()
    finally:
        checker.close()
    return result, checker


def test_a_runs_changed_trial_is_checked_again_and_a_refused_one_fails_again(tmp_path):
    folder = tmp_path / "cache"
    spec = compile_sweep(tmp_path, [trial(n, TrialSettings(image_uri="img"), ["python", "-c", "pass"], []) for n in range(2)])
    result, checker = _run(tmp_path, spec, "first", folder)
    assert all(t.state == "SUCCEEDED" for t in result.tasks.values()) and checker.checked == 2

    tasks = trial_tasks(spec)
    constants(tasks[1])["display_name"]["runtimeValue"]["constant"] = "t-1 n=1 changed"
    result, checker = _run(tmp_path, spec, "second", folder)
    assert all(t.state == "SUCCEEDED" for t in result.tasks.values())
    assert (checker.cache.hits, checker.checked) == (1, 1)  # the unchanged trial from the cache, the other checked

    constants(tasks[1])["display_name"]["runtimeValue"]["constant"] = 'msg="hello world"'
    errors = []
    for name in ("third", "fourth"):
        result, checker = _run(tmp_path, spec, name, folder)
        failed = [t for t in result.tasks.values() if t.state == "FAILED"]
        assert len(failed) == 1 and "JSONDecodeError: Expecting " in (failed[0].error or "")
        errors.append(failed[0].error)
    assert not checker.started and checker.cache.hits == 2  # refused again from the cache, no helper
    assert errors[0] == errors[1]
