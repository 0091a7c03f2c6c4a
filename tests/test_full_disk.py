"""A batch's files appear together or not at all: a sweep dir on a full disk gets none of
them, and the launcher says which file did not fit, in one line."""

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import pytest

from conftest import QUICKSTART, REPO
from test_package_mode import make_project, package_overrides

pytestmark = pytest.mark.slow  # compile-mode sweeps in subprocesses

FILE_LIMIT = 16 * 1024  # bytes: Hydra's multirun.yaml fits, the pipeline does not
PAGE = 4096


PICKLED = ["hydra.launcher.trial.entry=pickle", "lr=0.1,0.01"]


def sweep(
    sweep_dir: Path, limit_file_size: bool = False, app: Path = QUICKSTART, extra: Sequence[str] = PICKLED
) -> subprocess.CompletedProcess:
    """A compile-mode sweep, by default of pickled jobs (pipeline.yaml, manifest.json, a job.pkl per trial)."""
    args = ["-m", "hydra.launcher.mode=compile", f"hydra.sweep.dir={sweep_dir}", *extra]

    def small_files() -> None:  # writes past the limit fail with EFBIG rather than killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    preexec: Optional[Callable[[], None]] = small_files if limit_file_size else None
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(app), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
    )


def free_pages(path: Path) -> int:
    return os.statvfs(path).f_bavail


def fill_to(disk: Path, pages: int) -> None:
    """Leaves exactly `pages` free pages on the tmpfs at `disk`."""
    (disk / "filler").write_bytes(b"\0" * ((free_pages(disk) - pages) * PAGE))
    assert free_pages(disk) == pages


def full_disk_run(disk: Path) -> subprocess.CompletedProcess:
    """On a tmpfs left with room for Hydra's multirun.yaml, the pipeline and the pickled
    jobs, but not for the manifest (measured by a first sweep on the same disk)."""
    before = free_pages(disk)
    first = sweep(disk / "sweep")
    assert first.returncode == 0, first.stderr
    used = before - free_pages(disk)
    manifest_pages = math.ceil((disk / "sweep" / "manifest.json").stat().st_size / PAGE)
    shutil.rmtree(disk / "sweep")
    fill_to(disk, used - manifest_pages)
    return sweep(disk / "sweep")


def test_a_full_disk_leaves_none_of_the_batch_and_says_which_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        # Without the right to mount, each file is capped in size instead (EFBIG, not ENOSPC).
        proc = full_disk_run(disk) if mounted else sweep(disk / "sweep", limit_file_size=True)
        left: List[str] = sorted(str(p.relative_to(disk / "sweep")) for p in (disk / "sweep").rglob("*"))
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Could not write ")]
    assert len(error) == 1, proc.stderr
    assert f"Could not write {disk / 'sweep'}/" in error[0]
    assert ("the disk is full (ENOSPC" if mounted else "(EFBIG)") in error[0], error[0]
    if mounted:  # the pipeline fitted, the manifest did not
        assert f"Could not write {disk / 'sweep' / 'manifest.json'}: " in error[0]
    assert left == ["multirun.yaml"], left  # Hydra's own, written before the launcher


def pages(path: Path) -> int:
    return math.ceil(path.stat().st_size / PAGE)


def test_a_wheel_that_does_not_fit_is_a_one_line_error_and_no_half_wheel(tmp_path):
    source = make_project(tmp_path / "project")
    extra = [*package_overrides(source), "hydra.launcher.pipeline_root=gs://my-bucket/sweeps", "x=1,2"]
    app = source / "trainer" / "task.py"
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        if mounted:  # room for Hydra's multirun.yaml and the project's wheel, not for this launcher's
            first = sweep(disk / "sweep", app=app, extra=extra)
            assert first.returncode == 0, first.stderr
            fits = [disk / "sweep" / "multirun.yaml", *(disk / "sweep" / "packages").rglob("trainer-*.whl")]
            room = sum(pages(f) for f in fits)
            shutil.rmtree(disk / "sweep")
            fill_to(disk, room)
        proc = sweep(disk / "sweep", limit_file_size=not mounted, app=app, extra=extra)
        left = sorted(p.name for p in (disk / "sweep").rglob("*") if p.is_file())
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Could not write ")]
    assert len(error) == 1, proc.stderr
    assert f"Could not write the trials' wheels under {disk / 'sweep' / 'packages'}: " in error[0]
    assert ("the disk is full (ENOSPC" if mounted else "(EFBIG)") in error[0], error[0]
    # Whole wheels only (the project's, reused by content next time), and no batch file.
    assert not any(name.endswith(".tmp") or name.startswith(("pipeline", "manifest")) for name in left), left
