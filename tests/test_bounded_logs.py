"""Following and tailing a trial's log hold a bounded part of it in memory, however much
the trial printed."""

import subprocess
import sys
import tracemalloc
from pathlib import Path

from hydra_vertex_pipelines.pipeline_builder.local.processes import Supervisor, tail

LOG_BYTES = 16 * 1024 * 1024
BLOCKS = LOG_BYTES // (1024 * 100)  # blocks of 1024 lines of 100 bytes
BOUND = 1024 * 1024  # what reading the log may hold at most: far less than the log


def big_log(path: Path) -> Path:
    line = b"x" * 99 + b"\n"
    with open(path, "wb") as f:
        for n in range(BLOCKS):
            f.write(line * 1023 + f"line {n}\n".encode())
    return path


def peak_allocated(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class LineCounter:
    """A console that keeps only how many lines it was given, and the last one."""

    def __init__(self) -> None:
        self.lines = 0
        self.last = ""

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.last = text
        return len(text)

    def flush(self) -> None:
        pass


def test_the_tail_of_a_large_log_reads_only_its_end(tmp_path):
    log = big_log(tmp_path / "trial.log")
    result: list = []
    peak = peak_allocated(lambda: result.append(tail(str(log), lines=3)))
    assert result[0] == "x" * 99 + "\n" + "x" * 99 + "\n" + f"line {BLOCKS - 1}\n"
    assert peak < BOUND, f"the tail held {peak} bytes of a {LOG_BYTES}-byte log"


def test_following_a_large_backlog_holds_a_chunk_at_a_time(tmp_path):
    """The process has ended with its whole log written: the follower has it all to read
    at once, and streams it in chunks."""
    log = big_log(tmp_path / "trial.log")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    console = LineCounter()
    supervisor = Supervisor(sys.executable, str(tmp_path), console, None, None, {})
    peak = peak_allocated(lambda: supervisor._follow(ended, str(log), "[t]"))
    assert console.lines == BLOCKS * 1024  # every line was shown
    assert console.last == f"[t] line {BLOCKS - 1}\n"
    assert peak < BOUND, f"the follower held {peak} bytes of a {LOG_BYTES}-byte log"


def test_a_line_longer_than_a_chunk_is_shown_in_pieces(tmp_path):
    log = tmp_path / "trial.log"
    log.write_text("y" * (4 * BOUND) + "\nend")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    console = LineCounter()
    supervisor = Supervisor(sys.executable, str(tmp_path), console, None, None, {})
    peak = peak_allocated(lambda: supervisor._follow(ended, str(log), "[t]"))
    assert console.last == "[t] end\n" and console.lines > 2
    assert peak < BOUND
