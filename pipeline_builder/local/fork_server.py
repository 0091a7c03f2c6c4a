"""Starts Python trial commands from an interpreter that has already imported their libraries.

A fresh `python train.py` spends about half a second of CPU importing Hydra and its
plugins before the trial does anything; on a small machine running several trials at once
that start-up dominates short trials. The server imports those modules once, then forks a
child per command, which runs `python SCRIPT ARGS`, `python -m MODULE ARGS` or
`python -c CODE ARGS` the way the interpreter would: same argv, environment (TMPDIR
included), working directory and sys.path, an absolute `__file__` for a script, output to
the trial's log file, its own session for signals, and /gcs/ paths routed as in every
trial (fuse). If the runner goes away (stdin closes) while children still run,
the server stops them rather than leave them behind.

A child can say when its start-up is over (`tell_started`; the launcher's trial entries
say it once Hydra has composed the job's config), and the runner's side (forked.py) lets
at most one such child per CPU be in its start-up at a time: several trials composing
their configs at once only share the CPUs, so each takes longer to reach its work; one
after another, the first ones start working sooner.

Protocol, one JSON object per line (helper_process): requests on the server's stdin
({"id", "argv", "env", "cwd", "log"}), replies on its stdout ({"id", "pid"} when started,
{"id", "started"} when its start-up is over, or it ended first, {"id", "exit"} when it
ended).
"""

import gc
import importlib
import json
import os
import select
import signal
import sys
import tempfile
import time
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from .fuse import install_from_environment
from .sessions import GRACE_S, signal_session
from .subreaper import available as subreaper_available
from .subreaper import end_as, run_as_init

_SAFETY_S = 1.0  # the server loop looks for ended children at least this often
# In a forked child: where it says that its start-up is over (tell_started), once.
STARTED_FD: Optional[int] = None


def tell_started() -> None:
    """In a forked child: its start-up is over, and the next trial may start. The
    launcher's trial entries call this once Hydra has composed the job's config."""
    global STARTED_FD
    fd, STARTED_FD = STARTED_FD, None
    if fd is not None:
        try:
            os.write(fd, b"s")
        except OSError:
            pass
        finally:
            os.close(fd)


def python_invocation(argv: Sequence[str]) -> Optional[List[str]]:
    """The part after `python` if the server can run it (script, -m, -c), else None."""
    rest = list(argv[1:])
    if not rest:
        return None
    if rest[0] in ("-m", "-c"):
        return rest if len(rest) >= 2 else None
    if rest[0].startswith("-"):
        return None  # interpreter flags (-u, -X ...) need a real interpreter
    return rest


def _redirect(request: Dict[str, Any]) -> None:
    """In the forked child: its output to the trial's log, its folder, environment and
    /gcs/ routing, as a new interpreter started with them would have."""
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # read TMPDIR again, as a new interpreter would
    install_from_environment()


def _run_python(rest: List[str]) -> None:
    """Runs `python REST` (script, -m or -c) in this interpreter, with its argv and sys.path."""
    import runpy

    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path[1:] if p not in extra]
    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        sys.path[:] = [os.getcwd(), *extra, *base]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    elif rest[0] == "-c":
        sys.argv = ["-c", *rest[2:]]
        sys.path[:] = ["", *extra, *base]
        exec(compile(rest[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(rest)  # as typed; __file__ is absolute, as since Python 3.9
        script = os.path.abspath(rest[0])
        sys.path[:] = [os.path.dirname(script), *extra, *base]
        runpy.run_path(script, run_name="__main__")


def _run_child(request: Dict[str, Any]) -> int:
    """In the forked child, its output redirected: become `python ARGV`, return its exit code."""
    import traceback

    rest = python_invocation(request["argv"])
    assert rest is not None
    try:
        _run_python(rest)
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()  # what the interpreter would run at exit (logging.shutdown, ...)
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    return code


def _stop_children(children: Dict[int, str], first: int) -> None:
    """The runner went away with children running: stop their sessions, as it would have
    (`first`, then SIGKILL after the grace period)."""
    for pid in children:
        signal_session(pid, first)
    deadline = time.monotonic() + GRACE_S
    while children and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.02)
        else:
            children.pop(pid, None)
    for pid in children:
        signal_session(pid, signal.SIGKILL)


def _wake_on_child_end() -> int:
    """A pipe's read end that gets a byte whenever a child ends, so the server loop sleeps
    until a request or an end comes rather than polling for ends."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    return read


def _as_before_wake_up() -> None:
    """In a forked child: SIGCHLD and the wake-up pipe as a new interpreter has them."""
    wake = signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if wake != -1:
        os.close(wake)


def _fork(request: Dict[str, Any], wake: int) -> Tuple[int, int]:
    """Starts the child for `request`; returns its pid once its session exists, and the
    pipe it says the end of its start-up through (see tell_started)."""
    global STARTED_FD
    started, ready = os.pipe()
    told, tell = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd in (started, told, wake):
                os.close(fd)
            STARTED_FD = tell
            _as_before_wake_up()
            os.setsid()
            os.close(ready)  # its session exists before anyone learns its pid
            _redirect(request)
            if subreaper_available():  # the trial runs under an init of its own (subreaper.py)
                end_as(run_as_init(lambda: _run_child(request)))
            code = _run_child(request)
        finally:
            os._exit(code & 0xFF)
    os.close(ready)
    os.close(tell)
    os.read(started, 1)
    os.close(started)
    return pid, told


def _reply(out: IO[str], message: Dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def serve(preload: Sequence[str], stop_signal: int = signal.SIGTERM) -> None:
    """The server loop: import `preload`, then fork a child per request until stdin closes.

    The runner closes stdin once its children have ended; stdin closing with children
    still running means the runner died, and the children are stopped: `stop_signal`
    first (SIGKILL for children that must not see a SIGTERM), SIGKILL after the grace
    period."""
    for name in preload:
        importlib.import_module(name)
    # What the preload made is shared with every child until written to: kept out of the
    # garbage collector's passes, it is not copied into each child by a collection.
    gc.collect()
    gc.freeze()
    _Loop(stop_signal).run()
    os._exit(0)  # nothing to tear down: the interpreter's own exit, with Hydra loaded, is slow


class _Loop:
    """The server's loop: it sleeps until a request, a child's word on its start-up, or a
    child's end comes."""

    def __init__(self, stop_signal: int) -> None:
        self.stop_signal = stop_signal
        self.out = sys.stdout
        self.stdin = sys.stdin.buffer
        self.wake = _wake_on_child_end()
        self.children: Dict[int, str] = {}  # pid -> request id
        self.telling: Dict[int, str] = {}  # a child's start-up pipe -> its request id
        self.buffer = b""
        self.open = True

    def run(self) -> None:
        while self.open or self.children:
            watched = [self.wake, *self.telling, *([self.stdin] if self.open else [])]
            ready, _, _ = select.select(watched, [], [], _SAFETY_S)
            if self.wake in ready:
                os.read(self.wake, 4096)
            for fd in [r for r in ready if r in self.telling]:
                self._told(fd)
            if self.stdin in ready:
                self._requests()
            self._reap()

    def _requests(self) -> None:
        chunk = os.read(self.stdin.fileno(), 65536)
        if not chunk:
            self.open = False
            if self.children:
                _stop_children(self.children, self.stop_signal)
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            request = json.loads(line)
            self.out.flush()
            pid, told = _fork(request, self.wake)
            self.children[pid] = request["id"]
            self.telling[told] = request["id"]
            _reply(self.out, {"id": request["id"], "pid": pid})

    def _told(self, fd: int) -> None:
        """A child said its start-up is over, or every holder of its pipe closed it."""
        ident = self.telling.pop(fd)
        os.close(fd)
        _reply(self.out, {"id": ident, "started": True})

    def _reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            ident = self.children.pop(pid, None)
            if ident is None:
                continue
            for fd in [fd for fd, i in self.telling.items() if i == ident]:
                self._told(fd)  # it ended without a word: its place is free all the same
            _reply(self.out, {"id": ident, "exit": os.waitstatus_to_exitcode(status)})
