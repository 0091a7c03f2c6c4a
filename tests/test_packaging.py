"""Shipping the user's code as a wheel: digest, build, and upload-once against the GCS emulator."""

import importlib.util
import os
import uuid
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

from hydra_vertex_pipelines.pipeline_builder.cloud import gcs
from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.wheels import project_wheel as packaging

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "trainer"
version = "0.1.0"

[tool.setuptools.packages.find]
include = ["trainer*"]
"""


def make_project(root: Path) -> Path:
    files = {
        "pyproject.toml": PYPROJECT,
        "trainer/__init__.py": "",
        "trainer/task.py": "def main():\n    print('training')\n\n\nif __name__ == '__main__':\n    main()\n",
        "README.md": "tiny\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def snapshot(root: Path) -> Dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


# --- digest ---------------------------------------------------------------------------------


def test_digest_is_stable_and_ignores_mtime(tmp_path):
    a = make_project(tmp_path / "a")
    b = make_project(tmp_path / "b")
    assert packaging.source_digest(a) == packaging.source_digest(a) == packaging.source_digest(b)
    before = packaging.source_digest(a)
    os.utime(a / "trainer" / "task.py", (1, 1))
    assert packaging.source_digest(a) == before


def test_digest_changes_with_a_byte_or_a_rename(project):
    before = packaging.source_digest(project)
    task = project / "trainer" / "task.py"
    task.write_bytes(task.read_bytes().replace(b"training", b"trainin9"))
    changed = packaging.source_digest(project)
    assert changed != before
    task.rename(project / "trainer" / "task2.py")
    assert packaging.source_digest(project) not in (before, changed)


def test_digest_does_not_mix_path_and_content(tmp_path):
    """Length prefixes keep ("ab", "c") and ("a", "bc") apart."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "ab").write_text("c")
    (two / "a").write_text("bc")
    assert packaging.source_digest(one) != packaging.source_digest(two)


def test_what_is_not_source_does_not_count(project):
    before = packaging.source_digest(project)
    junk = [
        "trainer/__pycache__/task.cpython-311.pyc",
        "trainer/task.pyc",
        ".git/HEAD",
        ".hidden",
        "build/lib/trainer/task.py",
        "dist/trainer-0.1.0.tar.gz",
        "trainer.egg-info/PKG-INFO",
        "multirun/2024-01-01/00-00-00/0/.hydra/config.yaml",
        "outputs/2024-01-01/00-00-00/log.txt",
        "venv/lib/site.py",
        ".venv/lib/site.py",
        "env/pyvenv.cfg",
        "env/lib/site.py",
    ]
    for name in junk:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not source")
    (project / "linked").symlink_to(project / "trainer", target_is_directory=True)
    assert packaging.source_digest(project) == before


def test_a_package_named_like_an_output_folder_is_source(project):
    before = packaging.source_digest(project)
    (project / "trainer" / "outputs").mkdir()
    (project / "trainer" / "outputs" / "__init__.py").write_text("")
    assert packaging.source_digest(project) != before


# --- build ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_build_wheel_leaves_the_source_tree_alone(project, tmp_path):
    before = snapshot(project)
    wheel = packaging.build_wheel(project, tmp_path / "out")
    assert wheel.is_file() and wheel.parent == tmp_path / "out" and wheel.suffix == ".whl"
    assert list((tmp_path / "out").iterdir()) == [wheel]
    with zipfile.ZipFile(wheel) as zf:
        assert "trainer/task.py" in zf.namelist()
    assert snapshot(project) == before
    assert not (project / "build").exists()
    assert not list(project.glob("*.egg-info"))


@pytest.mark.slow
def test_a_backend_not_installed_here_is_fetched_into_an_isolated_build(project, tmp_path):
    """The offline build fails without the project's backend; pip's isolated build then
    fetches it from the package index, as for a user without it."""
    assert importlib.util.find_spec("hatchling") is None, "this test needs a backend that is not installed"
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "trainer"\nversion = "0.1.0"\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["trainer"]\n'
    )
    before = snapshot(project)
    wheel = packaging.build_wheel(project, tmp_path / "out")
    assert wheel.name.startswith("trainer-0.1.0-") and packaging.is_pure(wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        assert "trainer/task.py" in zf.namelist()
        assert any("hatchling" in zf.read(n).decode() for n in zf.namelist() if n.endswith("/WHEEL"))
    assert snapshot(project) == before


def test_a_folder_without_pyproject_is_a_config_error(tmp_path):
    folder = tmp_path / "not_a_project"
    folder.mkdir()
    (folder / "train.py").write_text("print(1)\n")
    with pytest.raises(ConfigError) as info:
        packaging.build_wheel(folder, tmp_path / "out")
    message = str(info.value)
    assert "hydra.launcher.trial.package.source_dir" in message
    assert str(folder) in message
    assert "a folder with a pyproject.toml or setup.py that pip can build into a wheel" in message


@pytest.mark.slow
def test_a_failing_build_shows_pips_last_lines(project, tmp_path):
    (project / "pyproject.toml").write_text(PYPROJECT.replace('version = "0.1.0"', 'version = "not a version!"'))
    with pytest.raises(ConfigError) as info:
        packaging.build_wheel(project, tmp_path / "out")
    assert info.value.field == "hydra.launcher.trial.package.source_dir"
    assert "pip wheel exited" in info.value.hint
    assert 0 < len(info.value.hint.splitlines()) <= 16
    assert not (tmp_path / "out").exists()


# --- upload once ----------------------------------------------------------------------------


@pytest.fixture
def bucket(emulators) -> str:
    name = f"pkg-{uuid.uuid4().hex[:12]}"
    gcs.ensure_bucket(gcs.client("local"), f"gs://{name}")
    return name


def objects(storage, bucket: str) -> List[str]:
    return sorted(blob.name for blob in storage.list_blobs(bucket))


@pytest.fixture
def counted_builds(monkeypatch) -> List[Path]:
    calls: List[Path] = []
    real = packaging.build_wheel

    def counting(source_dir, out_dir, *args, **kwargs):
        calls.append(Path(source_dir))
        return real(source_dir, out_dir, *args, **kwargs)

    monkeypatch.setattr(packaging, "build_wheel", counting)
    return calls


@pytest.mark.slow
def test_unchanged_code_is_uploaded_once(bucket, project, tmp_path, counted_builds):
    storage = gcs.client("local")
    root = f"gs://{bucket}/runs/"
    assert objects(storage, bucket) == []

    first = packaging.write_beside(tmp_path / "sweep1", project, root)
    assert packaging.upload_if_absent(storage, first)
    after_first = objects(storage, bucket)
    digest = packaging.source_digest(project)
    assert first.digest == digest and len(counted_builds) == 1
    assert len(after_first) == 1
    (name,) = after_first
    assert name.startswith(f"runs/packages/{digest}/") and name.endswith(".whl")
    assert first.uri == f"gs://{bucket}/{name}"
    assert first.local_path is not None and first.local_path.is_file()

    second = packaging.write_beside(tmp_path / "sweep2", project, root)
    assert second.uri == first.uri and not packaging.upload_if_absent(storage, second)
    assert objects(storage, bucket) == after_first
    assert len(counted_builds) == 1

    task = project / "trainer" / "task.py"
    task.write_text(task.read_text() + "# changed\n")
    third = packaging.write_beside(tmp_path / "sweep3", project, root)
    assert packaging.upload_if_absent(storage, third) and third.digest != digest
    after_third = objects(storage, bucket)
    new = sorted(set(after_third) - set(after_first))
    assert len(new) == 1 and set(after_first) <= set(after_third)
    assert new[0].startswith(f"runs/packages/{third.digest}/") and new[0].endswith(".whl")


@pytest.mark.slow
def test_losing_an_upload_race_is_not_an_error(bucket, project, tmp_path, monkeypatch):
    """Another launch uploaded the same object between our check and our upload."""
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud.storage import Blob

    def precondition_failed(self, *args, **kwargs):
        assert kwargs.get("if_generation_match") == 0
        raise PreconditionFailed("already there")

    package = packaging.write_beside(tmp_path / "sweep", project, f"gs://{bucket}/runs")
    monkeypatch.setattr(Blob, "upload_from_filename", precondition_failed)
    assert packaging.upload_if_absent(gcs.client("local"), package) is False
    assert package.uri.startswith(f"gs://{bucket}/runs/packages/{package.digest}/") and package.uri.endswith(".whl")


# --- compile mode ---------------------------------------------------------------------------


@pytest.mark.slow
def test_write_beside_puts_the_wheel_next_to_the_pipeline(project, tmp_path, counted_builds):
    pipeline_dir = tmp_path / "sweep"
    root = "gs://somewhere/runs"
    result = packaging.write_beside(pipeline_dir, project, root)
    digest = packaging.source_digest(project)
    assert result.digest == digest
    assert result.local_path is not None and result.local_path.parent == pipeline_dir / "packages" / digest
    assert result.local_path.is_file() and result.local_path.suffix == ".whl"
    assert result.uri == f"{packaging.package_folder(root, digest)}/{result.local_path.name}"
    assert result.uri.startswith(f"gs://somewhere/runs/packages/{digest}/")
    assert str(result.local_path) in packaging.upload_command(result) and result.uri in packaging.upload_command(result)

    again = packaging.write_beside(pipeline_dir, project, root)
    assert again == result and len(counted_builds) == 1

    other = packaging.write_beside(tmp_path / "next-sweep", project, root)  # a new sweep of the same code
    assert other.uri == result.uri and other.local_path.read_bytes() == result.local_path.read_bytes()
    assert len(counted_builds) == 1  # from this machine's cache, not built again


def test_package_folder():
    assert packaging.package_folder("gs://b/root/", "abc") == "gs://b/root/packages/abc"
    assert packaging.package_folder("gs://b", "abc") == "gs://b/packages/abc"
