"""`hydra-vertex-pipelines submit SWEEP_DIR`: a compiled sweep's pipeline.yaml submitted as
it is, without the app, against the emulator started from its command line, run as a user
runs it (a subprocess, a fresh terminal's environment)."""

import os
import shutil
import signal
import subprocess

import pytest
import yaml

from conftest import APPS, CLI, read_json, run_app
from test_emulator_process import Emulator

APP = APPS / "compiled" / "app.py"
ROOT = "gs://compiled/runs"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = Emulator(tmp_path_factory.mktemp("submit-compiled") / "data")
    yield started
    started.stop(signal.SIGTERM)


def compile_sweep(sweep_dir, sentinel, *extra: str) -> subprocess.CompletedProcess:
    return run_app(
        APP,
        [
            "-m",
            "hydra.launcher.mode=compile",
            f"hydra.launcher.pipeline_root={ROOT}",
            "hydra.launcher.trial.image_uri=local",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.trial.command=[python,{APP}]",
            "+hydra.launcher.labels.team=review",
            f"hydra.sweep.dir={sweep_dir}",
            "x=1,2",
            *extra,
        ],
        IMPORT_SENTINEL=str(sentinel),
    )


def fresh_env(home, **extra: str) -> dict:
    """A new terminal's environment: no app on the path, no credentials, no storage emulator."""
    # NO_GCE_CHECK: google-auth would otherwise wait for a metadata server this machine lacks.
    return {"PATH": os.environ["PATH"], "HOME": str(home), "NO_GCE_CHECK": "True", **extra}


def submit(sweep_dir, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "submit", str(sweep_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=env["HOME"],
    )


def values(stdout: str):
    rows = [line.split() for line in stdout.splitlines() if line.startswith("  #")]
    return [(w[0], w[1], w[-1]) for w in rows]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep")
    sentinel = tmp_path_factory.mktemp("sentinels") / "compile"
    proc = compile_sweep(sweep_dir, sentinel)
    return sweep_dir, sentinel, proc, (sweep_dir / "pipeline.yaml").read_bytes()


@pytest.fixture(scope="module")
def submitted(emulator, compiled, tmp_path_factory):
    """First without a project (refused), then with one, followed to its end."""
    sweep_dir = compiled[0]
    home = tmp_path_factory.mktemp("home")
    sentinel = home / "imported"
    env = fresh_env(home, STORAGE_EMULATOR_HOST=emulator.gcs_url, IMPORT_SENTINEL=str(sentinel))
    no_project = submit(sweep_dir, env, "--api-endpoint", emulator.api)
    after_refusal = read_json(sweep_dir / "manifest.json")
    proc = submit(sweep_dir, env, "--project", "local", "--api-endpoint", emulator.api, "--wait", "--poll-interval", "0.5")
    return sweep_dir, home, sentinel, no_project, after_refusal, proc


@pytest.mark.slow  # the emulator's command line, a compile and a run in subprocesses
def test_compile_records_what_submit_needs_and_its_closing_line_shows_the_command(compiled):
    sweep_dir, sentinel, proc, document = compiled
    manifest = read_json(sweep_dir / "manifest.json")
    assert sentinel.exists()  # the compile imported the app: the sentinel works
    assert manifest["mode"] == "compile" and "vertex" not in manifest
    assert manifest["job_id"] == manifest["run_id"] and manifest["sweep"]["run_id"] == manifest["run_id"]
    assert manifest["target"] == {"project": "", "location": "us-central1", "api_endpoint": None}
    assert manifest["job_settings"]["labels"]["team"] == "review"
    assert manifest["job_settings"]["labels"]["hydra-run"] == manifest["run_id"]
    import hashlib

    assert manifest["pipeline_sha256"] == hashlib.sha256(document).hexdigest()
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert "To submit this very file, without the app:" in lines[-1]
    assert lines[-1].endswith(f"submit {sweep_dir} --project PROJECT")


@pytest.mark.slow
def test_without_a_project_nothing_is_sent(submitted):
    sweep_dir, _, _, no_project, after_refusal, _ = submitted
    assert no_project.returncode == 1, no_project
    assert "error: no project: pass --project PROJECT" in no_project.stderr
    assert "Nothing was sent" in no_project.stderr and "Traceback" not in no_project.stderr
    assert "vertex" not in after_refusal and after_refusal["mode"] == "compile"


@pytest.mark.slow
def test_submit_runs_the_compiled_file_without_the_app(emulator, compiled, submitted):
    sweep_dir, home, sentinel, _, _, proc = submitted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not sentinel.exists()  # the submit never imported the app
    assert values(proc.stdout) == [("#0", "COMPLETED", "2.0"), ("#1", "COMPLETED", "4.0")]
    manifest = read_json(sweep_dir / "manifest.json")
    where = manifest["vertex"]
    assert manifest["mode"] == "submit"
    assert where["resource_name"] == f"projects/local/locations/us-central1/pipelineJobs/{manifest['run_id']}"
    assert where["storage_emulator_host"] == emulator.gcs_url and where["api_endpoint"] == emulator.api
    job = emulator.request(f"/v1/{where['resource_name']}")
    assert job["pipelineSpec"] == yaml.safe_load(compiled[3])  # the file as compiled, byte for byte read
    assert job["labels"]["team"] == "review"
    assert read_json(sweep_dir / "summary.json")["counts"] == {"COMPLETED": 2}
    # --wait kept report.html live while it followed ("best: ..." on its lines), then put the
    # collector's final report in its place.
    assert "; best: 2 (trial 0)" in proc.stdout, proc.stdout[-2000:]
    report = (sweep_dir / "report.html").read_text(encoding="utf-8")
    assert "trials done" not in report and "http-equiv" not in report


@pytest.mark.slow
def test_status_and_results_work_on_it_in_a_new_terminal(submitted):
    sweep_dir, home, *_ = submitted
    env = fresh_env(home)  # the storage emulator is found from the manifest
    status = subprocess.run([CLI, "status", str(sweep_dir)], capture_output=True, text=True, timeout=60, env=env)
    assert status.returncode == 0 and ": PIPELINE_STATE_SUCCEEDED (2 succeeded" in status.stdout, status
    results = subprocess.run([CLI, "results", str(sweep_dir)], capture_output=True, text=True, timeout=60, env=env)
    assert results.returncode == 0, results
    assert values(results.stdout) == [("#0", "COMPLETED", "2.0"), ("#1", "COMPLETED", "4.0")]


@pytest.mark.slow
def test_a_second_submit_is_refused_and_new_run_submits_another(emulator, submitted):
    sweep_dir, home, *_ = submitted
    env = fresh_env(home, STORAGE_EMULATOR_HOST=emulator.gcs_url)
    first = read_json(sweep_dir / "manifest.json")["vertex"]["resource_name"]
    again = submit(sweep_dir, env, "--project", "local", "--api-endpoint", emulator.api)
    assert again.returncode == 1 and "was submitted already, as " + first in again.stderr, again
    assert "--new-run" in again.stderr
    proc = submit(sweep_dir, env, "--new-run", "--wait", "--poll-interval", "0.5")  # the recorded target
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = read_json(sweep_dir / "manifest.json")
    second = manifest["vertex"]["resource_name"]
    assert second != first and second.rsplit("/", 1)[1].startswith(manifest["run_id"] + "-resume-")
    assert manifest["earlier_jobs"] == [first] and manifest["job_id"] == second.rsplit("/", 1)[1]
    assert values(proc.stdout) == [("#0", "COMPLETED", "2.0"), ("#1", "COMPLETED", "4.0")]


@pytest.mark.slow
def test_recover_and_cancel_work_on_it(submitted):
    sweep_dir, home, *_ = submitted
    env = fresh_env(home)
    proc = subprocess.run([CLI, "recover", str(sweep_dir), "--poll-interval", "0.5"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nothing to recover" in proc.stdout
    cancel = subprocess.run([CLI, "cancel", str(sweep_dir)], capture_output=True, text=True, timeout=60, env=env)
    assert cancel.returncode == 1 and "already ended (PIPELINE_STATE_SUCCEEDED): nothing to cancel" in cancel.stdout, cancel


@pytest.mark.slow
def test_a_moved_sweep_dir_is_submitted_and_an_edited_file_only_with_force(emulator, tmp_path):
    """Compiled in one place, reviewed, copied elsewhere and submitted from there."""
    compile_sweep(tmp_path / "compiled", tmp_path / "sentinel", "hydra.launcher.trial.entry=pickle")
    sweep_dir = tmp_path / "elsewhere"
    shutil.move(tmp_path / "compiled", sweep_dir)
    pipeline = sweep_dir / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + "# edited after review\n")
    env = fresh_env(tmp_path, STORAGE_EMULATOR_HOST=emulator.gcs_url)
    refused = submit(sweep_dir, env, "--project", "local", "--api-endpoint", emulator.api)
    assert refused.returncode == 1 and "was edited after it was compiled" in refused.stderr, refused
    assert "--force" in refused.stderr and "vertex" not in read_json(sweep_dir / "manifest.json")
    proc = submit(sweep_dir, env, "--project", "local", "--api-endpoint", emulator.api, "--force", "--wait", "--poll-interval", "0.5")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Uploaded 2 files under gs://compiled/runs/" in proc.stdout  # the pickled jobs, from the moved dir
    assert values(proc.stdout) == [("#0", "COMPLETED", "2.0"), ("#1", "COMPLETED", "4.0")]
    manifest = read_json(sweep_dir / "manifest.json")
    assert manifest["pipeline_yaml"] == str(pipeline) and (sweep_dir / "summary.json").exists()
    assert not (tmp_path / "compiled").exists()


@pytest.mark.slow
def test_run_files_are_written_and_wheels_uploaded_only_if_absent(emulator, tmp_path, monkeypatch):
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
    from hydra_vertex_pipelines.pipeline_builder.recovery import upload_run_files

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
    wheel, pickle = tmp_path / "trainer-0.1.0-py3-none-any.whl", tmp_path / "job.pkl"
    wheel.write_bytes(b"wheel")
    pickle.write_bytes(b"pickled")
    root = "gs://wheels-test/runs"
    files = {f"{root}/packages/abc/{wheel.name}": str(wheel), f"{root}/run-1/jobs/0.pkl": str(pickle)}
    storage = gcs.client("local")
    first = upload_run_files(storage, files, root, "us-central1")
    assert (first.run_files, first.wheels, first.wheels_present) == (1, [f"{root}/packages/abc/{wheel.name}"], [])
    wheel.write_bytes(b"another build of the same sources")
    second = upload_run_files(storage, files, root, "us-central1")
    assert (second.run_files, second.wheels, second.wheels_present) == (1, [], [f"{root}/packages/abc/{wheel.name}"])
    assert gcs.read_bytes(storage, f"{root}/packages/abc/{wheel.name}") == b"wheel"
    assert gcs.read_bytes(storage, f"{root}/run-1/jobs/0.pkl") == b"pickled"


@pytest.mark.slow  # builds the project's wheel
def test_a_package_sweeps_wheels_are_uploaded_if_absent(emulator, tmp_path, monkeypatch):
    from conftest import launch_in_process
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
    from test_package_mode import make_project, package_overrides

    source = make_project(tmp_path / "project")
    sweep_dir = tmp_path / "sweep"
    overrides = [f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.mode=compile", "hydra.launcher.pipeline_root=gs://pkgs/root"]
    launch_in_process(source / "trainer" / "conf", [*overrides, *package_overrides(source)], [["x=1"]])
    wheels = sorted(uri for uri in read_json(sweep_dir / "manifest.json")["files"] if uri.endswith(".whl"))
    assert len(wheels) == 2 and all(uri.startswith("gs://pkgs/root/packages/") for uri in wheels)
    env = fresh_env(tmp_path, STORAGE_EMULATOR_HOST=emulator.gcs_url)

    def submit_and_cancel(*extra: str) -> str:
        proc = submit(sweep_dir, env, "--project", "local", "--api-endpoint", emulator.api, *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        subprocess.run([CLI, "cancel", str(sweep_dir)], capture_output=True, timeout=60, env=env)  # its trials need not run
        return proc.stdout

    first = submit_and_cancel()
    assert [f"Uploaded {uri} (the trials install it)" in first for uri in wheels] == [True, True]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.gcs_url)
    assert sorted(gcs.list_uris(gcs.client("local"), "gs://pkgs/root/packages/")) == wheels
    again = submit_and_cancel("--new-run")
    assert [f"Already in the bucket, not uploaded again: {uri}" in again for uri in wheels] == [True, True]


def test_a_local_runs_or_an_older_manifest_is_refused_saying_why(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "manifest.json").write_text('{"format_version": 1, "mode": "local", "trials": []}')
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text('{"format_version": 1, "mode": "compile", "trials": []}')
    local = submit(tmp_path / "local", fresh_env(tmp_path))
    assert local.returncode == 1 and "is of a local run: only a compiled (mode=compile) sweep is submitted" in local.stderr
    old = submit(tmp_path / "old", fresh_env(tmp_path))
    assert old.returncode == 1 and "lacks sweep, job_settings, job_id, recovery, pipeline_sha256" in old.stderr
    assert "compile the sweep again" in old.stderr and "Traceback" not in old.stderr + local.stderr
