"""Ctrl-C and SIGTERM during a local run: the first stops the run, the next ones hurry it.

Python turns SIGINT into KeyboardInterrupt but dies on SIGTERM at once, leaving the trials
(each in a session of its own, as in a container) running. While a run is under way, both
signals raise KeyboardInterrupt in the main thread, so the runner stops every process and
keeps what finished; a repeated signal during that clean-up does not cut it short (which
would leave processes behind) but kills what is left at once.
"""

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """SIGTERM asked the run to stop (SIGINT raises a plain KeyboardInterrupt)."""


class _Stops:
    def __init__(self) -> None:
        self.requested = False
        self.hurry: List[Callable[[], None]] = []

    def handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.requested = True
            raise KeyboardInterrupt() if signum == signal.SIGINT else StopRequested(f"stopped by {signal.Signals(signum).name}")
        for hurry in list(self.hurry):
            hurry()


_active: Optional[_Stops] = None


@contextmanager
def stop_signals(hurry: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """While the block runs: SIGINT and SIGTERM raise KeyboardInterrupt once, later ones
    call `hurry`. Nests (an outer block keeps its first signal); does nothing outside the
    main thread, where Python cannot handle signals."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = _active
    stops = outer or _Stops()
    if hurry is not None:
        stops.hurry.append(hurry)
    previous = {} if outer else {s: signal.signal(s, stops.handle) for s in _SIGNALS}
    _active = stops
    try:
        yield
    finally:
        if hurry is not None:
            stops.hurry.remove(hurry)
        if outer is None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        _active = outer
