"""Starts Python trial commands from an interpreter that has already imported their libraries.

A fresh `python train.py` spends about half a second of CPU importing Hydra and its
plugins before the trial does anything; on a small machine running several trials at once
that start-up dominates short trials. The server imports those modules once, then forks a
child per command, which runs `python SCRIPT ARGS`, `python -m MODULE ARGS` or
`python -c CODE ARGS` the way the interpreter would: same argv, environment (TMPDIR
included), working directory and sys.path, an absolute `__file__` for a script, output to
the trial's log file, its own session for signals, and /gcs/ paths routed as in every
trial (local_fuse). If the runner goes away (stdin closes) while children still run,
the server stops them rather than leave them behind.

Protocol, one JSON object per line: requests on the server's stdin
({"id", "argv", "env", "cwd", "log"}), replies on its stdout ({"id", "pid"} when started,
{"id", "exit"} when it ended, {"id", "error"} when it could not start).
"""

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Dict, List, Optional, Sequence

from .fuse import install_from_environment

STOP_GRACE_S = 5.0


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


def _run_child(request: Dict) -> int:
    """In the forked child, in its own session: become `python ARGV`, return its exit code."""
    import runpy
    import traceback

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
    rest = python_invocation(request["argv"])
    assert rest is not None
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path[1:] if p not in extra]
    try:
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


def _stop_children(children: Dict[int, str]) -> None:
    """The runner went away with children running: stop their sessions, as it would have."""
    for pid in children:
        _signal_session(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while children and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.02)
        else:
            children.pop(pid, None)
    for pid in children:
        _signal_session(pid, signal.SIGKILL)


def _signal_session(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def serve(preload: Sequence[str]) -> None:
    """The server loop: import `preload`, then fork a child per request until stdin closes.

    The runner closes stdin once its children have ended; stdin closing with children
    still running means the runner died, and the children are stopped."""
    for name in preload:
        importlib.import_module(name)
    out = sys.stdout
    children: Dict[int, str] = {}
    stdin = sys.stdin.buffer
    buffer = b""
    open_ = True
    while open_ or children:
        ready, _, _ = select.select([stdin] if open_ else [], [], [], 0.02)
        if ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                open_ = False
                if children:
                    _stop_children(children)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                out.flush()
                started, ready = os.pipe()
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        os.close(started)
                        os.setsid()
                        os.close(ready)  # its session exists before anyone learns its pid
                        code = _run_child(request)
                    finally:
                        os._exit(code & 0xFF)
                os.close(ready)
                os.read(started, 1)
                os.close(started)
                children[pid] = request["id"]
                out.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                out.flush()
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            ident = children.pop(pid, None)
            if ident is not None:
                out.write(json.dumps({"id": ident, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
                out.flush()
    os._exit(0)  # nothing to tear down: the interpreter's own exit, with Hydra loaded, is slow


class ForkServer:
    """The runner's side: start commands through the server and wait for their ends.

    With `custom_jobs`, the CustomJob checker (custom_job_check) starts too: a local run
    needs both, and started early (while the pipeline compiles) their imports are done by
    the time the first trial starts."""

    def __init__(self, python: str, preload: Sequence[str], cwd: str, env: Dict[str, str], custom_jobs: bool = True) -> None:
        from .gcpc_check import CustomJobChecker

        self.preload = list(preload)
        code = f"import sys; from hydra_vertex_pipelines.pipeline_builder.local.fork_server import serve; serve({list(preload)!r})"
        self.proc = subprocess.Popen(
            [python, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self.custom_jobs: Optional[CustomJobChecker] = CustomJobChecker(python) if custom_jobs else None
        self._lock = threading.Lock()
        self._next = 0
        self._started: Dict[str, threading.Event] = {}
        self._pids: Dict[str, int] = {}
        self._exits: Dict[str, int] = {}
        self._ended: Dict[str, threading.Event] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            ident = message["id"]
            if "pid" in message:
                self._pids[ident] = message["pid"]
                self._started[ident].set()
            elif "exit" in message:
                self._exits[ident] = message["exit"]
                self._ended[ident].set()
        for event in list(self._started.values()) + list(self._ended.values()):
            event.set()  # the server died: release every waiter

    def spawn(self, argv: Sequence[str], env: Dict[str, str], cwd: str, log: str) -> "ForkedProcess":
        with self._lock:
            ident = str(self._next)
            self._next += 1
            self._started[ident] = threading.Event()
            self._ended[ident] = threading.Event()
            stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
            request = {"id": ident, "argv": list(argv), "env": env, "cwd": cwd, "log": log}
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
        self._started[ident].wait()
        if ident not in self._pids:
            raise OSError("the fork server stopped")
        return ForkedProcess(self, ident, self._pids[ident])

    def close(self) -> None:
        from .gcpc_check import close_helper

        if self.custom_jobs is not None:
            self.custom_jobs.close()
        close_helper(self.proc, timeout=10)


class ForkedProcess:
    """The part of subprocess.Popen's interface the runner uses."""

    def __init__(self, server: ForkServer, ident: str, pid: int) -> None:
        self.server = server
        self.ident = ident
        self.pid = pid
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None and self.server._ended[self.ident].is_set():
            self.returncode = self.server._exits.get(self.ident, -9)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self.server._ended[self.ident].wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        code = self.poll()
        assert code is not None
        return code
