"""The one way this project replaces a file: whole, or not at all; and files that appear
together or not at all.

A reader (the collector, a following launcher, a restarted emulator) never sees half a
file, and a write that fails (a full disk, a stop) leaves the previous version and no
temporary file behind. Standard library only: trials and the collector's image use it.
"""

import errno
import os
import shutil
import threading
from pathlib import Path
from types import TracebackType
from typing import Callable, List, Optional, Tuple, Type, Union

PathLike = Union[str, "os.PathLike[str]"]


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _write_temporary(target: Path, fill: Callable[[Path], object]) -> Path:
    """Fills `target`'s temporary file; on any failure removes it and re-raises."""
    temporary = _temporary(target)
    try:
        fill(temporary)
    except BaseException:
        _remove(temporary)
        raise
    return temporary


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _bytes_into(data: Union[str, bytes]) -> Callable[[Path], object]:
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def fill(temporary: Path) -> None:
        with open(temporary, "wb") as f:
            f.write(payload)

    return fill


def _place(target: Path, fill: Callable[[Path], object]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_temporary(target, fill)
    try:
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise


def write_atomic(path: PathLike, data: Union[str, bytes]) -> None:
    """Writes `data` (text as UTF-8) to `path` through a temporary file beside it."""
    _place(Path(path), _bytes_into(data))


def copy_atomic(source: PathLike, path: PathLike) -> None:
    """Copies the file `source` to `path` through a temporary file beside it."""
    _place(Path(path), lambda temporary: shutil.copyfile(source, temporary))


def os_reason(error: OSError) -> str:
    """Why a write failed, in a few words: that the disk is full, or the OS's error and its code."""
    code = errno.errorcode.get(error.errno or 0, str(error.errno))
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({code}: {error.strerror})"
    return f"{error.strerror or error} ({code})"


class WriteFailed(OSError):
    """A file of a FileSet could not be written: `path` names it (the OS error may name only
    its temporary file, or nothing), `errno` and `strerror` say why."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(error.errno, error.strerror or str(error), str(path))
        self.path = path

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT)

    def reason(self) -> str:
        return os_reason(self)


class FileSet:
    """Files that appear together or not at all, such as a pipeline and its manifest.

    Each is written to a temporary name beside it; `commit` renames them all into place.
    Leaving the `with` block by an exception (or `discard`) removes the temporary files, the
    files already renamed, the files handed over with `own` (a name claimed by creating it
    empty) and the folders made for them that are left empty. A failed write raises
    WriteFailed, naming the file.
    """

    def __init__(self) -> None:
        self._staged: List[Tuple[Path, Path]] = []  # (temporary, target)
        self._placed: List[Path] = []
        self._folders: List[Path] = []

    def own(self, path: PathLike) -> None:
        """`path` was created for this set: it goes if the set does not appear."""
        self._placed.append(Path(path))

    def _stage(self, path: PathLike, fill: Callable[[Path], object]) -> None:
        target = Path(path)
        try:
            self._make_folder(target.parent)
            self._staged.append((_write_temporary(target, fill), target))
        except OSError as e:
            raise WriteFailed(target, e) from e

    def _make_folder(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir(exist_ok=True)
            self._folders.append(made)

    def write(self, path: PathLike, data: Union[str, bytes]) -> None:
        """Stages `data` (text as UTF-8) for `path`."""
        self._stage(path, _bytes_into(data))

    def copy(self, source: PathLike, path: PathLike) -> None:
        """Stages a copy of the file `source` for `path`."""
        self._stage(path, lambda temporary: shutil.copyfile(source, temporary))

    def commit(self) -> None:
        """Renames every staged file into place."""
        while self._staged:
            temporary, target = self._staged[0]
            try:
                os.replace(temporary, target)
            except OSError as e:
                raise WriteFailed(target, e) from e
            self._staged.pop(0)
            self._placed.append(target)

    def discard(self) -> None:
        """Removes everything this set wrote or was handed, and the folders it made if empty."""
        for temporary, _ in self._staged:
            _remove(temporary)
        for path in self._placed:
            _remove(path)
        for folder in reversed(self._folders):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._staged, self._placed, self._folders = [], [], []

    def __enter__(self) -> "FileSet":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if kind is not None:
            self.discard()
            return
        try:
            self.commit()
        except BaseException:
            self.discard()
            raise
