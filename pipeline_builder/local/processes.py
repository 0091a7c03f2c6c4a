"""Starts a task's processes, follows their logs, and stops them as a container would be stopped.

Each process runs in its own session, under an init of its own (subreaper.py) where the
system has subreapers. When its main process ends, whatever it started is killed (whatever
it left in its session, and, under the init, daemons that left the session), as everything
in a container dies with the container's main process;
a stop (a failed replica, the job's timeout, a cancel) sends SIGTERM to the session, then
SIGKILL after a grace period, or at once when the stop is hurried. If this process dies
without stopping them, the reaper (reaper.py) stops them.
"""

import errno
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from . import subreaper
from .fork_server import python_invocation
from .forked import ForkServer, StartCancelled
from .reaper import Reaper
from .sessions import GRACE_S, signal_session

LOG_TAIL_LINES = 20
TAIL_BLOCK = 8192  # a tail reads the log backwards in blocks of this many bytes
TAIL_MAX_BYTES = 65536  # and never more than this of it
FOLLOW_CHUNK = 65536  # a follower reads at most this much of a log at a time
_POLL_S = 0.02
# A process's end wakes its waiter (see _await_end); these bound a wait where nothing does.
_IDLE_S = 0.5
_FOLLOW_S = (0.05, 0.25)  # a follower's pause between reads of a quiet log: from, doubling up to


class Console(Protocol):
    """Where streamed logs go: any text stream (stdout, a file, io.StringIO)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


@dataclass
class Launch:
    """One process to start: its command, environment, log file and console prefix (None:
    the log is not streamed)."""

    command: List[str]
    env: Dict[str, str]
    log_path: str
    prefix: Optional[str] = None
    cwd: Optional[str] = None  # None: the supervisor's


@dataclass
class Outcome:
    """How a task's processes ended: exit codes and logs, the first failure first."""

    codes: List[int]
    logs: List[str]
    timed_out: bool = False


def tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log, read backwards from its end in blocks: at most
    TAIL_MAX_BYTES of it however large it is (a longer last line is cut at its start)."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            start = end
            data = b""
            while start > 0 and data.count(b"\n", 0, max(len(data) - 1, 0)) < lines and end - start < TAIL_MAX_BYTES:
                step = min(TAIL_BLOCK, start, TAIL_MAX_BYTES - (end - start))
                start -= step
                f.seek(start)
                data = f.read(step) + data
    except OSError:
        return ""
    pieces = data.split(b"\n")  # as readlines() splits: at newlines only, not at a progress bar's \r
    whole = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    return b"".join(whole[-lines:]).decode("utf-8", errors="replace")


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Starts processes for the runner's tasks and stops them all on request."""

    def __init__(
        self,
        python: str,
        cwd: str,
        console: Console,
        preload: Optional[Sequence[str]],
        fork_server: Optional[ForkServer],
        server_env: Dict[str, str],
    ) -> None:
        self.python = python
        self.cwd = cwd
        self.console = console
        self.console_lock = threading.Lock()
        # Modules a fork server imports once for all Python commands; None: no server.
        self.preload = list(preload) if preload is not None else None
        self.server = fork_server
        self.server_env = server_env
        self._lock = threading.Lock()
        self._running: Dict[int, Any] = {}
        self.stopping = threading.Event()
        self._hurry = threading.Event()

    def _start(self, launch: Launch) -> Any:
        """Forked from the preloaded server when it is a Python command the server can run,
        else a plain subprocess; either way in a session of its own, under an init of its own
        where the system has subreapers (subreaper.py)."""
        Path(launch.log_path).write_text("", encoding="utf-8")
        command = launch.command
        if self.preload is not None and command[0] == self.python and python_invocation(command):
            with self._lock:
                if self.server is None:
                    self.server = ForkServer(self.python, self.preload, self.cwd, self.server_env, custom_jobs=False)
            return self.server.spawn(command, launch.env, launch.cwd or self.cwd, launch.log_path, self.stopping)
        if subreaper.available():
            env_path = launch.env.get("PATH", os.defpath)
            if os.sep not in command[0] and shutil.which(command[0], path=env_path) is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", command[0])  # as Popen says it
            command = subreaper.command(command)
        with open(launch.log_path, "ab") as log_file:
            return subprocess.Popen(
                command,
                cwd=launch.cwd or self.cwd,
                env=launch.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def run(self, launches: Sequence[Launch], timeout: Optional[float] = None) -> Outcome:
        """Starts every launch, streams the logs that have a prefix, and waits for all to end.
        When one fails, or `timeout` seconds pass, the rest are stopped."""
        procs: List[Any] = []
        followers: List[threading.Thread] = []
        try:
            for launch in launches:
                if self.stopping.is_set():
                    break
                try:
                    self._started(launch, procs, followers)
                except StartCancelled:  # it waited for its place while the run began to stop
                    break
            first_failure, timed_out = self._wait(procs, timeout)
        except BaseException:
            self._signal_all(procs, signal.SIGKILL)  # what started must not outlive the failure
            raise
        finally:
            for follower in followers:
                follower.join()
            with self._lock:
                for p in procs:
                    self._running.pop(p.pid, None)
            for p in procs:
                Reaper.shared().ended(p.pid)
        codes = [p.returncode for p in procs]
        logs = [launch.log_path for launch in launches[: len(procs)]]
        if first_failure is not None:  # the cause first: the others were stopped because of it
            codes.insert(0, codes.pop(first_failure))
            logs.insert(0, logs.pop(first_failure))
        return Outcome(codes, logs, timed_out)

    def _started(self, launch: Launch, procs: List[Any], followers: List[threading.Thread]) -> None:
        """Starts one launch (added to `procs`), known to the reaper, its log followed if it
        has a prefix."""
        try:
            proc = self._start(launch)
        except OSError as e:
            with open(launch.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(f"could not start {launch.command[0]!r}: {e}\n")
            raise
        with self._lock:
            self._running[proc.pid] = proc
        Reaper.shared().started(proc.pid)  # stopped even if this process is killed
        procs.append(proc)
        if launch.prefix is not None:
            follower = threading.Thread(target=self._follow, args=(proc, launch.log_path, launch.prefix), daemon=True)
            follower.start()
            followers.append(follower)

    def _wait(self, procs: Sequence[Any], timeout: Optional[float]) -> Tuple[Optional[int], bool]:
        """Until every process has ended: (the index of the first that failed, or None;
        whether `timeout` passed). A failure, the timeout or a stop stops the others."""
        first_failure: Optional[int] = None
        timed_out = False
        started = time.monotonic()
        stopped_at: Optional[float] = None
        ended = set()
        while True:
            codes = [p.poll() for p in procs]  # every one, so each returncode is fresh
            for p, c in zip(procs, codes, strict=True):
                if c is not None and p.pid not in ended:
                    ended.add(p.pid)
                    signal_session(p.pid, signal.SIGKILL)  # its leftovers die with it
            if first_failure is None and any(c not in (None, 0) for c in codes):
                first_failure = next(i for i, c in enumerate(codes) if c not in (None, 0))
            if all(c is not None for c in codes):
                return first_failure, timed_out
            now = time.monotonic()
            if timeout is not None and not timed_out and now - started > timeout:
                timed_out = True
            if stopped_at is None and (first_failure is not None or timed_out or self.stopping.is_set()):
                stopped_at = now
                self._signal_all(procs, signal.SIGTERM)
            elif stopped_at is not None and (now - stopped_at > GRACE_S or self._hurry.is_set()):
                self._signal_all(procs, signal.SIGKILL)
            running = [p for p, c in zip(procs, codes, strict=True) if c is None]
            # One process: its end wakes this at once; several, or a stop under way: a poll.
            pause = _POLL_S
            if len(running) == 1 and stopped_at is None:
                pause = _IDLE_S if timeout is None else min(_IDLE_S, max(started + timeout - now, 0.0) + 0.001)
            _await_end(running[0], pause)

    @staticmethod
    def _signal_all(procs: Sequence[Any], sig: int) -> None:
        for p in procs:
            if p.poll() is None:
                signal_session(p.pid, sig)

    def running_pids(self) -> List[int]:
        """The process ids this supervisor runs now, each leading its own session."""
        with self._lock:
            return list(self._running)

    def stop_all(self) -> None:
        """Stops every running process: SIGTERM to each session, SIGKILL after the grace
        period (or at once after `hurry()`); returns when they have ended."""
        self.stopping.set()
        with self._lock:
            procs = list(self._running.values())
        self._signal_all(procs, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while any(p.poll() is None for p in procs):
            if self._hurry.is_set() or time.monotonic() > deadline:
                self._signal_all(procs, signal.SIGKILL)
                for p in procs:
                    p.wait()
                break
            time.sleep(_POLL_S)
        for p in procs:
            signal_session(p.pid, signal.SIGKILL)

    def hurry(self) -> None:
        """A second stop request: what is still running is killed now."""
        self._hurry.set()
        with self._lock:
            procs = list(self._running.values())
        self._signal_all(procs, signal.SIGKILL)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def _follow(self, proc: Any, log_path: str, prefix: str) -> None:
        """Streams new lines of a process's log to the console until the process ends, a
        chunk at a time: however much the process prints, at most FOLLOW_CHUNK of it (and of
        an unfinished line) is held here; a longer line is shown in pieces."""
        pause = _FOLLOW_S[0]
        with open(log_path, encoding="utf-8", errors="replace") as f:
            partial = ""
            while True:
                ended = proc.poll() is not None
                chunk = f.read(FOLLOW_CHUNK)
                if chunk:
                    lines = (partial + chunk).split("\n")
                    partial = lines.pop()
                    if len(partial) >= FOLLOW_CHUNK:
                        lines.append(partial)
                        partial = ""
                    self._show(prefix, lines)
                    pause = _FOLLOW_S[0]
                elif ended:
                    break
                else:
                    _await_end(proc, pause)  # a quiet log is read less often; the end at once
                    pause = min(pause * 2, _FOLLOW_S[1])
            if partial:
                self._show(prefix, [partial])

    def _show(self, prefix: str, lines: Sequence[str]) -> None:
        with self.console_lock:
            for line in lines:
                self.console.write(f"{prefix} {line}\n")
            self.console.flush()


def _await_end(proc: Any, timeout: float) -> None:
    """Returns once `proc` has ended or `timeout` seconds have passed, woken by the end
    itself rather than polling: a forked process's end comes as its server's reply, a
    child's as its pidfd turning readable (Linux); elsewhere this is a short sleep."""
    if not isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        time.sleep(min(timeout, _POLL_S))
        return
    try:
        fd = pidfd_open(proc.pid)
    except OSError:
        return  # already waited for
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def python_command(command: Sequence[str], python: str) -> List[str]:
    """`command` with a leading `python`, `python3`, `python3.11`... replaced by `python`."""
    command = list(command)
    if command and re.fullmatch(r"python[0-9.]*", os.path.basename(command[0])):
        command[0] = python
    return command
