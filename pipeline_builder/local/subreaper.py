"""Each started process runs under a small init of its own, so nothing it starts outlives it.

A process that double-forks and calls setsid (a `nohup` wrapper, a server, a data loader's
daemon) leaves its starter's session and, once its parent exits, is adopted by init: no
stop of the session reaches it. On Linux a process can be a child subreaper
(prctl(PR_SET_CHILD_SUBREAPER)): such orphans are adopted by it instead of by init. Each
started process therefore runs as the child of one, the way a container's processes run
under the container's init:

- the init leads the session the process starts in, and starts the process as its child;
- every process the started one leaves behind, in its session or not, is its descendant
  (orphans come back to it), so `descendants(init)` finds them all;
- when the started process ends, the init kills (SIGKILL) every descendant left, reaps
  them, and ends as the started process ended (its exit code, or the signal that killed it);
- a SIGTERM, SIGINT or SIGHUP does not end the init (it waits for the started process, which
  the stop signals too), so its descendants keep coming back to it until the stopper's
  SIGKILL reaches them all (sessions.signal_session kills the descendants before the init).

Run as a script (`python -I -S subreaper.py COMMAND...`, standard library only, imports
nothing of this package) for plain commands; the fork server calls `run_as_init` in each
child it forks. Where prctl is missing (macOS) `available()` is False and processes start
as before, their sessions stopped as a whole.
"""

import errno
import os
import signal
import sys
from typing import Any, Callable, Dict, List, Optional

_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def available() -> bool:
    """Whether this system can make a process a child subreaper (Linux)."""
    return sys.platform.startswith("linux")


def become_subreaper() -> bool:
    """Makes this process the child subreaper of its descendants; False where it cannot."""
    if not available():
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def parents() -> Dict[int, int]:
    """Every running process's parent (Linux /proc): {pid: ppid}; empty where there is no
    /proc. Zombies (ended, not yet waited for) are left out: nothing is left to stop."""
    found: Dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if fields[0] != b"Z":
                    found[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    return found


def descendants(root: int, parent_of: Optional[Dict[int, int]] = None) -> List[int]:
    """Every process below `root`: its children, theirs, and so on."""
    parent_of = parents() if parent_of is None else parent_of
    children: Dict[int, List[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    found: List[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_descendants(root: int, rounds: int = 20) -> None:
    """SIGKILLs every descendant of `root`, again while new ones appear (a process forking
    as it is killed), for at most `rounds` passes."""
    for _ in range(rounds):
        found = descendants(root)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _ignore(signum: int, frame: object) -> None:
    """A handler, not SIG_IGN: what the init starts must not inherit an ignored signal."""


def _start_main(body: Callable[[], int], handlers: Dict[signal.Signals, Any]) -> int:
    """Forks the main process, which runs `body` with this process's former signal
    `handlers` and exits with what it returns; returns its pid. The stop signals are
    blocked on entry; a stop sent before the fork (which the main process did not get) is
    passed on to it."""
    main = os.fork()
    if main == 0:
        code = 1
        try:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # one sent since the fork comes now
            code = body()
        finally:
            os._exit(code & 0xFF)
    for sig in signal.sigpending() & set(STOP_SIGNALS):
        os.kill(main, sig)
    return main


def run_as_init(body: Callable[[], int]) -> int:
    """In a session leader: becomes the subreaper, runs `body` in a child (the main
    process, which exits with what it returns), reaps until that ends, then kills and
    reaps what it left. Returns the main process's wait status."""
    become_subreaper()
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # none lost while the main process starts
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore)
    main = _start_main(body, {sig: h for sig, h in handlers.items() if h is not None})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    status: Optional[int] = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == main:
            status = wait_status
            kill_descendants(os.getpid())
    assert status is not None
    return status


def end_as(status: int) -> None:
    """Ends this process as the process whose wait status is `status` ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:  # SIGKILL's disposition cannot be set, nor need be
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # a signal that does not end a process by default
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _exec(argv: List[str]) -> int:
    """In the main process: becomes `argv`; returns an exit code only if it cannot."""
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, f"could not start {argv[0]!r}: {e}\n".encode())
        return 127 if e.errno == errno.ENOENT else 126


def command(argv: List[str]) -> List[str]:
    """`argv` run under an init of its own, by this interpreter (nothing of this package imported)."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), *argv]


if __name__ == "__main__":
    end_as(run_as_init(lambda: _exec(sys.argv[1:])))
