"""The runner's side of the fork server (fork_server.py): start Python commands through it,
at most one per CPU in its start-up at a time for commands that tell theirs, and wait for
their ends."""

import signal
import subprocess
import threading
from typing import Dict, Optional, Sequence

from .fork_server import python_invocation
from .helper_process import HelperEnded, HelperProcess
from .settings import cpu_count

_START_LIMIT_S = 30.0  # a trial that says nothing of its start-up holds a place this long at most


class StartCancelled(Exception):
    """The run began to stop while a command waited for its place: it was not started."""


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
        tells_start: Sequence[str] = (),
    ) -> None:
        from .gcpc_check import CustomJobChecker

        self.preload = list(preload)
        # `python -m MODULE` commands of these modules say when their start-up is over.
        self.tells_start = tuple(tells_start)
        self._places = threading.BoundedSemaphore(cpu_count())
        code = (
            "import sys; from hydra_vertex_pipelines.pipeline_builder.local.fork_server import serve; "
            f"serve({list(preload)!r}, stop_signal={int(stop_signal)})"
        )
        self.helper = HelperProcess([python, "-c", code], cwd=cwd, env=env)
        self.custom_jobs: Optional[CustomJobChecker] = CustomJobChecker(python) if custom_jobs else None

    def spawn(
        self, argv: Sequence[str], env: Dict[str, str], cwd: str, log: str, stopping: Optional[threading.Event] = None
    ) -> "ForkedProcess":
        """Starts `argv` as a forked child, once a place is free if it tells its start-up;
        raises StartCancelled if `stopping` was set while it waited."""
        rest = python_invocation(argv)
        tells = rest is not None and rest[0] == "-m" and rest[1] in self.tells_start
        if tells:
            self._places.acquire()
            if stopping is not None and stopping.is_set():
                self._places.release()
                raise StartCancelled(argv[0])
        started = None
        try:
            ident = self.helper.send({"argv": list(argv), "env": env, "cwd": cwd, "log": log})
            started = self.helper.reply(ident, "pid")
        except HelperEnded:
            raise OSError("the fork server stopped") from None
        finally:
            if tells and started is None:
                self._places.release()
        assert started is not None
        if tells:
            threading.Thread(target=self._free_place, args=(ident,), daemon=True).start()
        return ForkedProcess(self.helper, ident, started["pid"])

    def _free_place(self, ident: str) -> None:
        """Once the child's start-up is over (or it ended, or took too long)."""
        try:
            self.helper.reply(ident, "started", timeout=_START_LIMIT_S)
        except HelperEnded:
            pass
        finally:
            self._places.release()

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
