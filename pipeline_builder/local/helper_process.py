"""A helper process spoken to in JSON lines: one request per line on its stdin, replies on
its stdout, each naming the request it answers by its `id`.

The fork server (a reply when a trial command started, one when it ended) and the
CustomJob check (one reply per request) are such helpers; this is the runner's side of
both, safe to use from several task threads at once.
"""

import json
import subprocess
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .phases import process_cpu


class HelperEnded(Exception):
    """The helper ended before it gave the reply waited for."""


class HelperProcess:
    """Starts `argv` in a session of its own and keeps its replies as they come."""

    def __init__(
        self, argv: Sequence[str], cwd: Optional[str], env: Optional[Mapping[str, str]], stderr: Optional[int] = None
    ) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        self._changed = threading.Condition()
        self._next = 0
        self._replies: Dict[str, List[Dict[str, Any]]] = {}
        self._ended = False
        # Its CPU time and that of the children it waited for, read as it is closed.
        self.cpu_s: Optional[float] = None
        self.children_cpu_s: Optional[float] = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            reply = json.loads(line)
            with self._changed:
                if reply["id"] in self._replies:
                    self._replies[reply["id"]].append(reply)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True  # the helper ended: release every waiter
            self._changed.notify_all()

    def send(self, request: Mapping[str, Any]) -> str:
        """Sends `request` under a new id, which it returns; raises OSError if the helper
        no longer reads its stdin."""
        with self._changed:
            ident = str(self._next)
            self._next += 1
            self._replies[ident] = []
            stdin = self.proc.stdin
            assert stdin is not None  # a PIPE
            stdin.write((json.dumps({"id": ident, **request}) + "\n").encode())
            stdin.flush()
        return ident

    def reply(self, ident: str, key: Optional[str] = None, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The first reply to request `ident` (that has `key`, if given), waiting for it up
        to `timeout` seconds (None: as long as it takes); None if it has not come by then.
        Raises HelperEnded if the helper ended without giving it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((r for r in self._replies.get(ident, []) if key is None or key in r), None)
                if found is not None:
                    return found
                if self._ended:
                    raise HelperEnded()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)

    def forget(self, ident: str) -> None:
        """No more replies to request `ident` are wanted."""
        with self._changed:
            self._replies.pop(ident, None)

    def close(self, timeout: float) -> None:
        """Closing stdin asks the helper to finish; one that does not within `timeout`
        seconds is killed."""
        cpu = process_cpu(self.proc.pid)
        if cpu is not None:
            self.cpu_s, self.children_cpu_s = cpu
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
