"""Files written together appear together or not at all."""

import errno
from pathlib import Path

import pytest

from hydra_vertex_pipelines.components.atomic_write import FileSet, WriteFailed, write_atomic


def test_a_failed_write_leaves_nothing_of_the_set(tmp_path):
    claimed = tmp_path / "pipeline.yaml"
    claimed.touch()
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(WriteFailed) as caught:
        with FileSet() as out:
            out.own(claimed)
            out.write(claimed, "spec")
            out.write(tmp_path / "0" / "deep" / "job.pkl", b"job")
            out.write(tmp_path / "blocker" / "manifest.json", "{}")
    assert caught.value.path == tmp_path / "blocker" / "manifest.json"
    assert caught.value.errno == errno.ENOTDIR and not caught.value.disk_full
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blocker"]


def test_a_set_appears_whole(tmp_path):
    write_atomic(tmp_path / "old.json", "old")
    with FileSet() as out:
        out.write(tmp_path / "old.json", "new")
        out.copy(tmp_path / "old.json", tmp_path / "sub" / "copy.json")
    assert (tmp_path / "old.json").read_text() == "new"
    assert (tmp_path / "sub" / "copy.json").read_text() == "old"  # copied when staged
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["copy.json", "old.json", "sub"]


def test_the_disk_full_reason_says_so():
    error = WriteFailed(Path("/x/manifest.json"), OSError(errno.ENOSPC, "No space left on device"))
    assert error.disk_full and error.reason() == "the disk is full (ENOSPC: No space left on device)"
