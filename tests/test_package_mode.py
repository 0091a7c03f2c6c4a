"""`trial.code: package`: trials run from a wheel of the project, uploaded once per content."""

import textwrap

import pytest

from hydra.core.utils import JobStatus

from conftest import APPS, launch_in_process, load_pipeline, read_json, submit_overrides

FAULTS = APPS / "faults"


def make_project(root, answer="1", depends=True, package_data=True):
    """A tiny installable project whose Hydra app (config in trainer/conf) returns where it
    was imported from; it depends on this launcher and ships its config, as it must."""
    (root / "trainer" / "conf").mkdir(parents=True)
    dependencies = '["hydra-vertex-pipelines-launcher"]' if depends else "[]"
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
            import hydra


            @hydra.main(version_base="1.3", config_path="conf", config_name="config")
            def main(cfg):
                return {{"x": cfg.x, "file": __file__, "answer": {answer}}}


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
    from hydra_vertex_pipelines.pipeline_builder import gcs

    return sorted(gcs.list_uris(gcs.client("local"), prefix))


def test_package_uploaded_once_and_trials_run_from_it(emulators, tmp_path):
    source = make_project(tmp_path / "project")
    bucket = "packages"
    base = [*submit_overrides(emulators, bucket), *package_overrides(source)]

    first = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's1'}", *base], [["x=1"], ["x=2"]])
    assert [r.status for r in first] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert [r.return_value["x"] for r in first] == [1, 2]
    # imported from the wheel's installed files, not the source tree
    assert all("/unpacked/" in r.return_value["file"] and str(source) not in r.return_value["file"] for r in first)
    uploaded = [u for u in objects(f"gs://{bucket}/runs/packages/")]
    assert len(uploaded) == 1 and uploaded[0].endswith(".whl")

    manifest = read_json(tmp_path / "s1" / "manifest.json")
    spec = load_pipeline(tmp_path / "s1" / "pipeline.yaml")
    pools = spec["root"]["dag"]["tasks"]["custom-training-job"]["inputs"]["parameters"]["worker_pool_specs"]
    package = pools["runtimeValue"]["constant"][0]["python_package_spec"]
    assert package["package_uris"] == uploaded
    # The prebuilt image runs `python -m <python_module> <args>`: the trial entry, then the app's module.
    assert package["python_module"] == "hydra_plugins.vertex_pipelines_launcher.trial_entry"
    assert package["executor_image_uri"].startswith("us-docker.pkg.dev/vertex-ai/training/")
    args = package["args"]
    assert args[: args.index("--")] == ["--num", "0", "--run-id", manifest["run_id"], "--sweep-dir", f"/gcs/{manifest['run_root'][5:]}"]
    assert args[args.index("--") + 1 :][:2] == ["-m", "trainer.task"] and args[-1] == "x=1"

    second = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's2'}", *base], [["x=3"]])
    assert second[0].return_value["x"] == 3
    assert objects(f"gs://{bucket}/runs/packages/") == uploaded  # unchanged code: nothing uploaded

    (source / "trainer" / "task.py").write_text((source / "trainer" / "task.py").read_text().replace('"answer": 1', '"answer": 2'))
    third = launch_in_process(source / "trainer" / "conf", [f"hydra.sweep.dir={tmp_path / 's3'}", *base], [["x=4"]])
    assert third[0].return_value["answer"] == 2
    assert len(objects(f"gs://{bucket}/runs/packages/")) == 2  # new code, a new digest folder


def test_compile_mode_writes_the_package_beside_the_pipeline(tmp_path):
    source = make_project(tmp_path / "project")
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt/root",
        *package_overrides(source),
    ]
    launch_in_process(source / "trainer" / "conf", overrides, [["x=1"]])
    wheels = list((tmp_path / "sweep" / "packages").glob("*/*.whl"))
    assert len(wheels) == 1
    manifest = read_json(tmp_path / "sweep" / "manifest.json")
    uri = f"gs://bkt/root/packages/{wheels[0].parent.name}/{wheels[0].name}"
    assert manifest["files"][uri] == str(wheels[0])


def _compile_refusal(tmp_path, source, *extra):
    overrides = [f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.mode=compile", "hydra.launcher.pipeline_root=gs://bkt/root", *package_overrides(source), *extra]
    with pytest.raises(Exception) as e:
        launch_in_process(source / "trainer" / "conf", overrides, [["x=1"]])
    assert not (tmp_path / "sweep" / "pipeline.yaml").exists()
    return str(e.value)


def test_a_wheel_that_does_not_bring_the_launcher_is_refused(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project", depends=False))
    assert "hydra.launcher.trial.package.source_dir='trainer-0.1.0-py3-none-any.whl' is not accepted" in message
    assert 'add "hydra-vertex-pipelines-launcher" to [project] dependencies' in message


def test_a_wheel_without_the_apps_config_files_is_refused(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project", package_data=False))
    assert "a wheel that holds the app's config files" in message and "trainer/conf/config.yaml is not in the wheel" in message


def test_package_mode_needs_a_collector_image(tmp_path):
    message = _compile_refusal(tmp_path, make_project(tmp_path / "project"), "hydra.launcher.collector_image=null")
    assert "hydra.launcher.collector_image=None is not accepted" in message
