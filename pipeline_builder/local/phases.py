"""Where a local run's time goes: its phases, one after another in the launching process
(wall time and this process's CPU time), and the CPU its helper processes used.

Measured on every run (a few clock reads) and logged at DEBUG, so that a slower run shows
which phase grew.
"""

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Phase:
    """One phase: its name, wall time and this process's CPU time (all its threads)."""

    name: str
    wall_s: float
    cpu_s: float

    def text(self) -> str:
        return f"{self.name} {self.wall_s:.2f} s ({self.cpu_s:.2f} s CPU)"


class PhaseClock:
    """Laps of one run: each `lap(name)` ends the phase that began at the previous lap (or
    when the clock was made). Safe to lap from task threads."""

    def __init__(self) -> None:
        self.phases: List[Phase] = []
        self.processes: Dict[str, float] = {}  # a helper process -> its CPU time
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> Phase:
        now = (time.perf_counter(), time.process_time())
        last, self._last = self._last, now
        phase = Phase(name, now[0] - last[0], now[1] - last[1])
        self.phases.append(phase)
        return phase

    def process(self, name: str, cpu_s: Optional[float]) -> None:
        """Notes a helper process's CPU time (None: not known on this system)."""
        if cpu_s is not None:
            self.processes[name] = cpu_s

    def total_s(self) -> float:
        return sum(p.wall_s for p in self.phases)


def process_cpu(pid: int) -> Optional[Tuple[float, float]]:
    """(CPU seconds of process `pid` itself, of its children it has waited for), from
    Linux's /proc; None elsewhere or once it has ended."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    try:
        user, system, child_user, child_system = (int(x) / tick for x in fields[11:15])
    except (ValueError, IndexError):
        return None
    return user + system, child_user + child_system
