"""`trial.code: package`: trials run from a wheel of the project, uploaded once per content."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.core.utils import JobStatus

from conftest import APPS, launch_in_process, load_pipeline, read_json, readme_line, run_shell, submit_overrides, user_checkout

FAULTS = APPS / "faults"


def make_project(root, answer="1", depends=True, package_data=True, requirement="hydra-vertex-pipelines-launcher"):
    """A tiny installable project whose Hydra app (config in trainer/conf) returns where it
    was imported from; it depends on this launcher and ships its config, as it must."""
    (root / "trainer" / "conf").mkdir(parents=True)
    dependencies = f'["{requirement}"]' if depends else "[]"
    data = '\n[tool.setuptools.package-data]\ntrainer = ["conf/*.yaml"]\n' if package_data else ""
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "trainer"
            version = "0.1.0"
            dependencies = {dependencies}

            [tool.setuptools]
            packages = ["trainer"]
            """
        )
        + data
    )
    (root / "trainer" / "__init__.py").write_text("")
    (root / "trainer" / "conf" / "config.yaml").write_text(
        "defaults:\n  - override hydra/launcher: vertex_pipelines\n  - _self_\n\nx: 0\n"
    )
    (root / "trainer" / "task.py").write_text(
        textwrap.dedent(
            f"""\
            import importlib.util
            import os
            import sys

            import hydra

            START = {{"cwd": os.getcwd(), "cwd_files": os.listdir(".")}}  # before Hydra writes anything


            @hydra.main(version_base="1.3", config_path="conf", config_name="config")
            def main(cfg):
                return {{
                    "x": cfg.x,
                    "file": __file__,
                    "answer": {answer},
                    "prefix": sys.prefix,
                    "path": sys.path,
                    "pytest": importlib.util.find_spec("pytest") is not None,
                    "kfp": importlib.util.find_spec("kfp") is not None,
                    **START,
                }}


            if __name__ == "__main__":
                main()
            """
        )
    )
    return root


def package_overrides(source):
    return [
        "hydra.launcher.trial.code=package",
        f"hydra.launcher.trial.package.source_dir={source}",
        "hydra.launcher.trial.package.python_module=trainer.task",
        "hydra.launcher.trial.package.executor_image_uri=us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
        "hydra.launcher.trial.entry=command",
        "hydra.launcher.collector_image=us-docker.pkg.dev/my-project/repo/collector:1",
    ]


def objects(prefix):
    from hydra_vertex_pipelines.pipeline_builder.cloud import gcs

    return sorted(gcs.list_uris(gcs.client("local"), prefix))


@pytest.mark.slow
def test_package_uploaded_once_and_trials_run_from_it(emulators, tmp_path):
    source = make_project(tmp_path / "project")
    bucket = "packages"
    base = [*submit_overrides(emulators, bucket), *package_overrides(source)]

    first = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's1'}", *base], [["x=1"], ["x=2"]])
    assert [r.status for r in first] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert [r.return_value["x"] for r in first] == [1, 2]
    # As in the prebuilt image: a fresh environment holding the wheels and what they
    # declare, started from an empty folder; nothing of this machine's environment.
    envs = tmp_path / "user-cache" / "hydra-vertex-pipelines-launcher" / "envs"
    for r in first:
        value = r.return_value
        assert Path(value["prefix"]).parent == envs and Path(value["file"]).is_relative_to(value["prefix"])
        assert value["pytest"] is False  # installed here, but nobody declared it
        assert value["kfp"] is False  # the launcher's wheel declares only what a trial imports
        assert not any(p.startswith(sys.prefix) or p.startswith(str(source)) for p in value["path"])
        assert value["cwd_files"] == [] and not Path(value["cwd"]).is_relative_to(source)
    uploaded = [u for u in objects(f"gs://{bucket}/runs/packages/")]
    assert sorted(u.rsplit("/", 1)[1].split("-")[0] for u in uploaded) == ["hydra_vertex_pipelines_launcher", "trainer"]

    manifest = read_json(tmp_path / "s1" / "manifest.json")
    spec = load_pipeline(tmp_path / "s1" / "pipeline.yaml")
    pools = spec["root"]["dag"]["tasks"]["custom-training-job"]["inputs"]["parameters"]["worker_pool_specs"]
    package = pools["runtimeValue"]["constant"][0]["python_package_spec"]
    assert sorted(package["package_uris"]) == uploaded and package["package_uris"][1].endswith("trainer-0.1.0-py3-none-any.whl")
    # The prebuilt image runs `python -m <python_module> <args>`: the trial entry, then the app's module.
    assert package["python_module"] == "hydra_plugins.vertex_pipelines_launcher.trial_entry"
    assert package["executor_image_uri"].startswith("us-docker.pkg.dev/vertex-ai/training/")
    args = package["args"]
    assert args[: args.index("--")] == [
        "--num",
        "0",
        "--run-id",
        manifest["run_id"],
        "--sweep-dir",
        f"/gcs/{manifest['run_root'][5:]}",
    ]
    assert args[args.index("--") + 1 :][:2] == ["-m", "trainer.task"] and args[-1] == "x=1"

    second = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's2'}", *base], [["x=3"]])
    assert second[0].return_value["x"] == 3
    assert objects(f"gs://{bucket}/runs/packages/") == uploaded  # unchanged code: nothing uploaded

    (source / "trainer" / "task.py").write_text(
        (source / "trainer" / "task.py").read_text().replace('"answer": 1', '"answer": 2')
    )
    third = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's3'}", *base], [["x=4"]])
    assert third[0].return_value["answer"] == 2
    assert len(objects(f"gs://{bucket}/runs/packages/")) == 3  # new code, a new digest folder


@pytest.mark.slow
def test_compile_mode_writes_the_package_beside_the_pipeline(tmp_path):
    source = make_project(tmp_path / "project")
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        *package_overrides(source),
    ]
    launch_in_process(source / "trainer" / "conf", overrides, [["x=1"]])
    wheels = sorted((tmp_path / "sweep" / "packages").glob("*/*.whl"), key=lambda w: w.name)
    assert [w.name for w in wheels] == [
        "hydra_vertex_pipelines_launcher-0.1.0-py3-none-any.whl",
        "trainer-0.1.0-py3-none-any.whl",
    ]
    manifest = read_json(tmp_path / "sweep" / "manifest.json")
    for wheel in wheels:
        assert manifest["files"][f"gs://bkt/root/packages/{wheel.parent.name}/{wheel.name}"] == str(wheel)

    # The launcher's wheel, made from the installed code, is one pip installs as it is.
    target = tmp_path / "installed"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(wheels[0]),
    ]
    subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
    assert (target / "hydra_plugins" / "vertex_pipelines_launcher" / "trial_entry.py").is_file()
    assert (target / "hydra_vertex_pipelines" / "pipeline_builder" / "local" / "package_env.py").is_file()
    metadata = next(target.glob("hydra_vertex_pipelines_launcher-0.1.0.dist-info")) / "METADATA"
    requires = [
        line for line in metadata.read_text().splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert [r.split()[1].split("<")[0].split(">")[0] for r in requires] == ["hydra-core", "omegaconf", "cloudpickle"]

    # The compiled pipeline runs as it is: run-local puts both wheels where its trials read them.
    root = tmp_path / "bucket"
    run = [
        sys.executable,
        "-m",
        "hydra_vertex_pipelines.pipeline_builder",
        "run-local",
        str(tmp_path / "sweep" / "pipeline.yaml"),
        "--root",
        str(root),
    ]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = read_json(next(root.glob("bkt/root/**/0/.vertex/result.json")))
    assert result["status"] == "COMPLETED" and result["return_value"]["x"] == 1
    assert Path(result["return_value"]["prefix"]).parent.name == "envs"


@pytest.mark.slow
def test_a_package_trial_runs_in_a_fresh_environment_in_local_mode(tmp_path):
    """Code the wheel leaves out (a module beside the package) runs from a source tree but
    not in the prebuilt image: the local run fails it as Vertex would."""
    source = make_project(tmp_path / "project")
    (source / "helpers.py").write_text("VALUE = 1\n")  # not in the wheel: packages = ["trainer"]
    task = source / "trainer" / "task.py"
    task.write_text(
        task.read_text().replace("    return {", "    if cfg.x == 2:\n        import helpers  # noqa: F401\n    return {", 1)
    )
    overrides = [f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.mode=local", *package_overrides(source)]
    returns = launch_in_process(source / "trainer" / "conf", overrides, [["x=1"], ["x=2"]])

    value = returns[0].return_value
    assert Path(value["prefix"]).parent == tmp_path / "user-cache" / "hydra-vertex-pipelines-launcher" / "envs"
    assert value["pytest"] is False and value["cwd_files"] == []
    assert not any(p.startswith(sys.prefix) or p.startswith(str(source)) for p in value["path"])
    assert returns[1].status == JobStatus.FAILED
    with pytest.raises(Exception, match="No module named 'helpers'"):
        _ = returns[1].return_value


def _compile_refusal(tmp_path, source, *extra):
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        *package_overrides(source),
        *extra,
    ]
    with pytest.raises(Exception) as e:
        launch_in_process(source / "trainer" / "conf", overrides, [["x=1"]])
    assert not (tmp_path / "sweep" / "pipeline.yaml").exists()
    return str(e.value)


@pytest.mark.slow
def test_a_wheel_that_does_not_bring_the_launcher_is_refused(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project", depends=False))
    assert "hydra.launcher.trial.package.source_dir='trainer-0.1.0-py3-none-any.whl' is not accepted" in message
    assert 'add "hydra-vertex-pipelines-launcher" to [project] dependencies' in message


@pytest.mark.slow
def test_a_wheel_without_the_apps_config_files_is_refused(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project", package_data=False))
    assert "a wheel that holds the app's config files" in message and "trainer/conf/config.yaml is not in the wheel" in message


@pytest.mark.slow
def test_a_wheel_that_wants_another_launcher_version_is_refused(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project", requirement="hydra-vertex-pipelines-launcher>=99"))
    assert "hydra.launcher.trial.package.source_dir='trainer-0.1.0-py3-none-any.whl' is not accepted" in message
    assert "the installed version (0.1.0)" in message and "the project requires hydra-vertex-pipelines-launcher>=99" in message


def test_package_mode_needs_a_collector_image(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project"), "hydra.launcher.collector_image=null")
    assert "hydra.launcher.collector_image=null is not accepted" in message


@pytest.mark.slow
def test_the_packaged_example_runs_as_the_readme_says(tmp_path):
    checkout = user_checkout(tmp_path / "clone")
    proc = run_shell(readme_line("cd examples/packaged && "), checkout)
    sweeps = list((checkout / "examples" / "packaged" / "multirun").glob("*/*"))
    assert len(sweeps) == 1 and "4 of 4 trials completed" in proc.stdout + proc.stderr
    summary = read_json(sweeps[0] / "summary.json")
    assert summary["counts"] == {"COMPLETED": 4}
    for row in summary["trials"]:
        lr, batch_size = (float(o.split("=")[1]) for o in row["overrides"])
        assert row["return_value"] == pytest.approx(abs(math.log10(lr) + 2) + 32 / batch_size)
    wheels = sorted(w.name for w in (sweeps[0] / "packages").glob("*/*.whl"))
    assert wheels == ["hydra_vertex_pipelines_launcher-0.1.0-py3-none-any.whl", "packaged_trainer-0.1.0-py3-none-any.whl"]
    assert len(list((tmp_path / "user-cache" / "hydra-vertex-pipelines-launcher" / "envs").iterdir())) == 1
