"""Stops the processes a run started when the process that started them dies first.

Each trial process leads a session of its own (so that a stop reaches everything it
started), which also means nothing stops it when its starter is killed with SIGKILL or
crashes: a launcher killed with `kill -9`, an emulator the OOM killer took. A container's
processes never outlive their container, so the reaper makes that hold here too: a small
process in a session of its own, told each session as it starts and ends through a pipe.
When the pipe closes with sessions still listed, the starter is gone: it sends them
SIGTERM, then SIGKILL after the grace period a stop gives. Where each session is led by
an init of its own (subreaper.py), that init outlives its starter and keeps every process
its session's process started as its descendant, daemons that left the session included:
signal_session reaches them all.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Optional, Set

from .sessions import GRACE_S, alive, signal_session


class Reaper:
    """The starter's side: one reaper per starting process, shared by its supervisors."""

    _shared: Optional["Reaper"] = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self.owner = os.getpid()
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the terminal's group must not reach it
            text=True,
        )

    @classmethod
    def shared(cls) -> "Reaper":
        with cls._shared_lock:
            reaper = cls._shared
            if reaper is None or reaper.owner != os.getpid() or reaper.proc.poll() is not None:
                reaper = cls._shared = cls()
            return reaper

    def _tell(self, line: str) -> None:
        with self._lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):  # the reaper is gone: nothing to tell
                pass

    def started(self, sid: int) -> None:
        self._tell(f"+{sid}")

    def ended(self, sid: int) -> None:
        self._tell(f"-{sid}")


def serve(stdin: IO[str]) -> None:
    """Follows the sessions the starter reports until it goes away, then stops those left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sessions: Set[int] = set()
    for line in stdin:
        line = line.strip()
        if line[:1] == "+":
            sessions.add(int(line[1:]))
        elif line[:1] == "-":
            sessions.discard(int(line[1:]))
    for sid in sessions:
        signal_session(sid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while any(alive(sid) for sid in sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    for sid in sessions:
        signal_session(sid, signal.SIGKILL)  # the leaders' leftovers too


if __name__ == "__main__":
    serve(sys.stdin)
