"""A sweep's files are named in one place, in the form of the folder they are in."""

from pathlib import Path

import pytest

from hydra_vertex_pipelines.components.sweep_files import SweepFiles, TrialFiles


def test_a_batch_s_files_carry_its_tag():
    first, later = SweepFiles.of_batch(Path("/s"), 0), SweepFiles.of_batch(Path("/s"), 4)
    assert [first.pipeline, first.manifest, first.summary, first.report, first.trials] == [
        Path("/s/pipeline.yaml"), Path("/s/manifest.json"), Path("/s/summary.json"), Path("/s/report.html"), Path("/s/trials.json"),
    ]  # fmt: skip
    assert [later.pipeline, later.manifest, later.summary] == [
        Path("/s/pipeline-4.yaml"),
        Path("/s/manifest-4.json"),
        Path("/s/summary-4.json"),
    ]


def test_a_second_launch_into_a_sweep_dir_gets_its_own_files():
    files = SweepFiles.of_batch(Path("/s"), 4)
    assert files.claimed(1).pipeline == Path("/s/pipeline-4.yaml")
    assert files.claimed(2).pipeline == Path("/s/pipeline-4-2.yaml")
    assert files.claimed(2).summary == Path("/s/summary-4-2.json")


@pytest.mark.parametrize("pipeline,manifest", [("pipeline.yaml", "manifest.json"), ("pipeline-4-2.yaml", "manifest-4-2.json")])
def test_the_files_beside_a_pipeline_file(pipeline, manifest):
    files = SweepFiles.of_pipeline(Path("/s") / pipeline)
    assert files is not None and files.manifest == Path("/s") / manifest and files.pipeline == Path("/s") / pipeline
    assert SweepFiles.of_pipeline(Path("/s/other.yaml")) is None


def test_a_run_folder_names_its_files_as_uris():
    files = SweepFiles("gs://b/root/run-1", "-4")
    assert (files.summary, files.report, files.trials) == (
        "gs://b/root/run-1/summary-4.json",
        "gs://b/root/run-1/report-4.html",
        "gs://b/root/run-1/trials-4.json",
    )
    assert SweepFiles.run_folder("gs://b/root", "run-1") == "gs://b/root/run-1"
    assert SweepFiles("gs://b/root").packages("abc") == "gs://b/root/packages/abc"


def test_a_sweep_dir_holds_the_local_run_s_files():
    files = SweepFiles(Path("/s"))
    assert files.lock == Path("/s/.vertex-local.lock")
    assert files.local_run("run-1") == Path("/s/.vertex_local/run-1")
    assert files.launcher_buckets == Path("/s/.gcs") and files.run_local_buckets == Path("/s/gcs")
    assert files.packages() == Path("/s/packages") and files.packages("abc") == Path("/s/packages/abc")


def test_a_trial_folder_s_files():
    trial = TrialFiles("/gcs/b/run-1/3")
    assert trial.launcher_folder == "/gcs/b/run-1/3/.vertex"
    assert (trial.result, trial.log, trial.job_pickle) == (
        "/gcs/b/run-1/3/.vertex/result.json",
        "/gcs/b/run-1/3/.vertex/trial.log",
        "/gcs/b/run-1/3/.vertex/job.pkl",
    )
    assert trial.replica_log(0, 0) == trial.log
    assert trial.replica_log(1, 0) == "/gcs/b/run-1/3/.vertex/trial-workerpool1-0.log"
    assert TrialFiles(Path("/t")).earlier_run("a/b") == Path("/t/.vertex/earlier-runs/a_b")
    assert TrialFiles.RECORD == ".vertex/result.json"


@pytest.mark.parametrize(
    "name,written",
    [
        ("result.json", True),
        ("trial.log", True),
        ("trial-workerpool2-1.log", True),
        ("model.pt", False),
        ("train.log", False),
        ("job.pkl", False),
    ],
)
def test_what_a_run_writes_in_the_launcher_folder(name, written):
    assert TrialFiles.is_run_output(name) is written
