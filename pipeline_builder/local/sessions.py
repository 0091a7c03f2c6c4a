"""Signals a started process's whole session, and the grace period a stop gives it.

Every process a run starts leads a session of its own, as a container's main process
leads everything in the container: a stop reaches the session (its process group, and
members that moved to a group of their own) with SIGTERM, then SIGKILL once `GRACE_S`
has passed, as `docker stop` gives a container ten seconds and Vertex a replica a few.
Standard library only: the fork server and the reaper use it at their start.
"""

import os
import signal
from typing import List

from .subreaper import descendants, kill_descendants

GRACE_S = 5.0  # between a stop's SIGTERM and its SIGKILL


def _session_members(sid: int) -> List[int]:
    """Processes of session `sid` (Linux /proc), beyond its process group."""
    members: List[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[3]) == sid and int(fields[2]) != sid:
            members.append(int(entry))
    return members


def signal_group(pid: int, sig: int) -> None:
    """Signals the process group `pid` leads; nothing if it has gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_session(sid: int, sig: int) -> None:
    """Signals every process of the session a started process leads (its process group,
    and members that moved to a group of their own) and every descendant of its leader:
    under a subreaper (subreaper.py) that is everything it started, daemons that left the
    session included. A SIGKILL reaches the descendants before the leader, so that none
    is adopted by init on the way."""
    if sig == signal.SIGKILL:
        kill_descendants(sid)
    else:
        for pid in descendants(sid):
            try:
                if os.getsid(pid) != sid:  # the session's own members get it once, below
                    os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    signal_group(sid, sig)
    for pid in _session_members(sid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet waited for, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False
