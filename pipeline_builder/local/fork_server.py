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

Protocol, one JSON object per line (helper_process): requests on the server's stdin
({"id", "argv", "env", "cwd", "log"}), replies on its stdout ({"id", "pid"} when started,
{"id", "exit"} when it ended).
"""

import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, Dict, List, Optional, Sequence

from .fuse import install_from_environment
from .helper_process import HelperEnded, HelperProcess
from .sessions import GRACE_S, signal_session
from .subreaper import available as subreaper_available
from .subreaper import end_as, run_as_init

_SAFETY_S = 1.0  # the server loop looks for ended children at least this often


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


def _fork(request: Dict[str, Any], wake: int) -> int:
    """Starts the child for `request`; returns its pid once its session exists."""
    started, ready = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(started)
            os.close(wake)
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
    os.read(started, 1)
    os.close(started)
    return pid


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
    out = sys.stdout
    children: Dict[int, str] = {}
    stdin = sys.stdin.buffer
    wake = _wake_on_child_end()
    buffer = b""
    open_ = True
    while open_ or children:
        ready, _, _ = select.select([stdin, wake] if open_ else [wake], [], [], _SAFETY_S)
        if wake in ready:
            os.read(wake, 4096)
        if stdin in ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                open_ = False
                if children:
                    _stop_children(children, stop_signal)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                out.flush()
                pid = _fork(request, wake)
                children[pid] = request["id"]
                _reply(out, {"id": request["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            ident = children.pop(pid, None)
            if ident is not None:
                _reply(out, {"id": ident, "exit": os.waitstatus_to_exitcode(status)})
    os._exit(0)  # nothing to tear down: the interpreter's own exit, with Hydra loaded, is slow


class ForkServer:
    """The runner's side: start commands through the server and wait for their ends.

    With `custom_jobs`, the CustomJob checker (gcpc_check) starts too: a local run needs
    both, and started early (while the pipeline compiles) their imports are done by the
    time the first trial starts. `stop_signal` is what the server's children get first if
    the runner goes away (see `serve`)."""

    def __init__(
        self,
        python: str,
        preload: Sequence[str],
        cwd: str,
        env: Dict[str, str],
        custom_jobs: bool = True,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        from .gcpc_check import CustomJobChecker

        self.preload = list(preload)
        code = (
            "import sys; from hydra_vertex_pipelines.pipeline_builder.local.fork_server import serve; "
            f"serve({list(preload)!r}, stop_signal={int(stop_signal)})"
        )
        self.helper = HelperProcess([python, "-c", code], cwd=cwd, env=env)
        self.custom_jobs: Optional[CustomJobChecker] = CustomJobChecker(python) if custom_jobs else None

    def spawn(self, argv: Sequence[str], env: Dict[str, str], cwd: str, log: str) -> "ForkedProcess":
        ident = self.helper.send({"argv": list(argv), "env": env, "cwd": cwd, "log": log})
        try:
            started = self.helper.reply(ident, "pid")
        except HelperEnded:
            raise OSError("the fork server stopped") from None
        assert started is not None
        return ForkedProcess(self.helper, ident, started["pid"])

    def close(self) -> None:
        if self.custom_jobs is not None:
            self.custom_jobs.close()
        self.helper.close(timeout=10)


class ForkedProcess:
    """The part of subprocess.Popen's interface the runner uses."""

    def __init__(self, helper: HelperProcess, ident: str, pid: int) -> None:
        self.helper = helper
        self.ident = ident
        self.pid = pid
        self.returncode: Optional[int] = None

    def _exit(self, timeout: Optional[float]) -> Optional[int]:
        if self.returncode is None:
            try:
                ended = self.helper.reply(self.ident, "exit", timeout)
            except HelperEnded:
                self.returncode = -9  # the server died, and its children with it
            else:
                if ended is not None:
                    self.returncode = ended["exit"]
        return self.returncode

    def poll(self) -> Optional[int]:
        return self._exit(timeout=0)

    def wait(self, timeout: Optional[float] = None) -> int:
        code = self._exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        return code
