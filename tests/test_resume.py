"""Resume: re-submitting a sweep runs only the trials that did not succeed, through
Vertex's cache, as the emulator honours it."""

import pytest
from hydra.core.utils import JobStatus

from conftest import APPS, launch_in_process, load_pipeline, read_json, submit_overrides

FAULTS = APPS / "faults"
COMMAND_ENTRY = ["hydra.launcher.trial.entry=command", f"hydra.launcher.trial.command=[python,{FAULTS / 'app.py'}]"]


def _remove_objects(folder_uri: str) -> None:
    """Removes a trial's objects from the bucket, as a lifecycle rule or a clean-up would."""
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    storage = gcs.client("local")
    bucket, prefix = gcs.split_uri(folder_uri)
    removed = list(storage.list_blobs(bucket, prefix=prefix + "/"))
    assert any(b.name.endswith("result.json") for b in removed)
    for blob in removed:
        blob.delete()


@pytest.mark.slow
def test_resubmitted_sweep_runs_only_the_trials_that_failed_or_lost_their_result(emulators, tmp_path, caplog):
    """Trial 1 failed; trial 2 succeeded, but its objects were removed from the bucket since:
    Vertex's cache would skip it with nothing to read, so it runs again too."""
    fix = tmp_path / "fixed"
    jobs = [["x=1"], ["x=broken", f"+fixed_by={fix}"], ["x=3"], ["x=4"]]
    base = [*submit_overrides(emulators, "resume"), *COMMAND_ENTRY]
    vertex = emulators["vertex"]

    first = launch_in_process(FAULTS / "conf", [f"hydra.sweep.dir={tmp_path / 'first'}", *base], jobs)
    assert [r.status for r in first] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.COMPLETED]
    _remove_objects(read_json(tmp_path / "first" / "manifest.json")["trials"][2]["output_uri"])

    fix.write_text("")  # the bug is fixed; the sweep is sent again
    started = len(vertex.custom_jobs)
    resumed = [f"hydra.sweep.dir={tmp_path / 'second'}", f"hydra.launcher.resume={tmp_path / 'first'}", *base]
    with caplog.at_level("WARNING", logger="hydra_plugins.vertex_pipelines_launcher"):
        second = launch_in_process(FAULTS / "conf", resumed, jobs)
    assert [r.status for r in second] == [JobStatus.COMPLETED] * 4
    assert [r.return_value for r in second] == [1.0, -1.0, 3.0, 4.0]
    ran = sorted(vertex.custom_jobs[started:])
    assert len(ran) == 2 and "x=broken" in ran[0] and ran[1] == "faults-2 x=3"  # exactly these CustomJobs ran
    assert "1 of 4 trials run again, as their .vertex/result.json is not under" in caplog.text
    assert "trial 2 (x=3)" in caplog.text and "hydra-rerun" in caplog.text

    old, new = read_json(tmp_path / "first" / "manifest.json"), read_json(tmp_path / "second" / "manifest.json")
    assert new["run_id"] == old["run_id"]  # same trial folders, so the cache knows them
    assert new["vertex"]["resource_name"] != old["vertex"]["resource_name"]  # a new PipelineJob
    states = sorted(
        t["state"] for t in vertex.runs[new["vertex"]["resource_name"].rsplit("/", 1)[1]].view()["jobDetail"]["taskDetails"]
    )
    assert states == ["SKIPPED", "SKIPPED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]  # 2 cache hits; 2 trials and the collector ran
    assert read_json(tmp_path / "second" / "summary.json")["counts"] == {"COMPLETED": 4}


def test_the_collector_is_never_cached_and_trials_are(tmp_path):
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        "hydra.launcher.trial.image_uri=img",
        *COMMAND_ENTRY,
    ]
    launch_in_process(FAULTS / "conf", overrides, [["x=1"], ["x=2"]])
    tasks = load_pipeline(tmp_path / "pipeline.yaml")["root"]["dag"]["tasks"]
    assert tasks["collect-trials"]["cachingOptions"] == {}  # enableCache false is left out
    assert all(t["cachingOptions"] == {"enableCache": True} for n, t in tasks.items() if n != "collect-trials")


def test_resume_names_a_sweep_it_can_read(tmp_path):
    import pytest

    from hydra_plugins.vertex_pipelines_launcher._errors import LauncherConfigError

    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=submit",
        "hydra.launcher.project=p",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        "hydra.launcher.trial.image_uri=img",
        f"hydra.launcher.resume={tmp_path / 'nowhere'}",
        *COMMAND_ENTRY,
    ]
    with pytest.raises(
        LauncherConfigError, match="hydra.launcher.resume.*the sweep dir \\(or its manifest.json\\) of an earlier submitted run"
    ):
        launch_in_process(FAULTS / "conf", overrides, [["x=1"]])


def test_only_trials_without_a_stored_result_get_a_cache_key_of_their_own():
    from hydra_plugins.vertex_pipelines_launcher._resume import RERUN_LABEL, rerun_lost_results
    from hydra_vertex_pipelines.components.sweep_files import TrialFiles
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

    trials = [
        TrialSpec(n, f"run_{n}", (f"x={n}",), f"t-{n}", f"gs://b/run/{n}", f"/gcs/b/run/{n}", (), labels={"team": "a"})
        for n in range(3)
    ]
    stored = {TrialFiles("gs://b/run/0").result, TrialFiles("gs://b/run/2").result, "gs://b/run/1/model.pt"}
    relabelled, lost = rerun_lost_results(trials, stored, "run-resume-20261204-233346")
    assert [t.number for t in lost] == [1]
    assert relabelled[1].labels == {"team": "a", RERUN_LABEL: "20261204-233346"}
    assert relabelled[0] == trials[0] and relabelled[2] == trials[2]
    assert relabelled[1].custom_job_inputs()["labels"] != trials[1].custom_job_inputs()["labels"]  # so its cache key
