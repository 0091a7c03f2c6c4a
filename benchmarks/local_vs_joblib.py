"""local-vs-joblib: whole-process wall time of one Hydra multirun of 16 trials that each sleep
1 s, 4 at a time, in local mode (forked trials and fresh interpreters, each a first run with
an empty CustomJob check cache and a re-run of the same command into the same sweep dir)
against hydra-joblib-launcher (pip install hydra-joblib-launcher). The runs alternate so all
see the same machine load. Then one first run and one re-run with the launcher's DEBUG
lines on give the phases of a local run.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
SLEEP_APP = HERE / "apps" / "sleep.py"
WORKLOAD = "16 trials x 1 s sleep, 4 at a time"
LOCAL = ["hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", "hydra.launcher.max_parallel=4"]
FRESH = [*LOCAL, "hydra.launcher.fresh_interpreters=true"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"]
VERBOSE = "hydra.verbose=hydra_plugins.vertex_pipelines_launcher"
ROWS = (
    "vertex_pipelines local, first run",
    "vertex_pipelines local, re-run",
    "vertex_pipelines local, fresh interpreters, first run",
    "vertex_pipelines local, fresh interpreters, re-run",
    "joblib",
)
_PHASE = re.compile(r"([a-z][a-z ]*?) ([0-9.]+) s \(([0-9.]+) s CPU\)")


def _run(args: List[str], sweep: str, cache: str) -> Tuple[float, str]:
    """Wall time and output of one whole `python sleep.py -m ...`."""
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SLEEP_APP), "-m", *args, "+i=range(16)", "+sleep=1", f"hydra.sweep.dir={sweep}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        env=env,
    )
    return time.perf_counter() - start, proc.stdout + proc.stderr


def _first_and_again(args: List[str]) -> Tuple[Tuple[float, str], Tuple[float, str]]:
    """A first run with an empty cache, then the same command again into the same sweep dir."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep, cache = f"{tmp}/sweep", f"{tmp}/cache"
        return _run(args, sweep, cache), _run(args, sweep, cache)


def _one_round(times: Dict[str, List[float]]) -> None:
    for args, (first, again) in ((LOCAL, ROWS[:2]), (FRESH, ROWS[2:4])):
        (t1, _), (t2, _) = _first_and_again(args)
        times[first].append(t1)
        times[again].append(t2)
    with tempfile.TemporaryDirectory() as tmp:
        times["joblib"].append(_run(JOBLIB, f"{tmp}/sweep", f"{tmp}/cache")[0])


def phases(wall: float, log: str) -> Tuple[List[Tuple[str, float, float]], str]:
    """The launcher's phases (name, wall, CPU) from its DEBUG lines, the time before it
    (Hydra's start and sweep composition) first, and its line on other processes' CPU."""
    line = next(x for x in log.splitlines() if "Local run phases:" in x)
    found = [(name, float(w), float(c)) for name, w, c in _PHASE.findall(line.split("Local run phases:", 1)[1])]
    total = sum(w for _, w, _ in found)
    others = next(x for x in log.splitlines() if "Local run CPU of other processes:" in x)
    return [("before the launcher", wall - total, float("nan")), *found], others.split("processes:", 1)[1].strip()


def local_vs_joblib(repeat: int) -> None:
    times: Dict[str, List[float]] = {name: [] for name in ROWS}
    for _ in range(repeat):
        _one_round(times)
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: median {median[name]:.2f} s over {repeat} runs ({', '.join(f'{x:.2f}' for x in t)})")
    command = f"`python benchmarks/run.py local-vs-joblib --repeat {repeat}`"
    for name in ROWS:
        print(f"| {WORKLOAD} | {name} | {median[name]:.2f} s | {median[name] / median['joblib']:.2f}x | {command} |")
    first, again = _first_and_again([*LOCAL, VERBOSE])
    print()
    for label, (wall, log) in (("first run", first), ("re-run", again)):
        found, others = phases(wall, log)
        cells = " | ".join(f"{w:.2f} s" + (f" ({c:.2f} CPU)" if c == c else "") for _, w, c in found)
        print(f"| {label} | {wall:.2f} s | {cells} | {others} |")
    print("columns: run | whole process | " + " | ".join(name for name, _, _ in phases(*first)[0]) + " | other processes")


_TRIAL_CPU = """
import os, sys
from hydra_vertex_pipelines.pipeline_builder.local import ForkServer, process_cpu
sweep, count = sys.argv[1], int(sys.argv[2])
server = ForkServer(sys.executable, ["hydra_plugins.vertex_pipelines_launcher._preload"], os.getcwd(), dict(os.environ),
                    custom_jobs=False)
entry = [sys.executable, "-m", "hydra_plugins.vertex_pipelines_launcher.trial_entry", "--run-id", "r", "--sweep-dir", sweep]
app = ["--", "benchmarks/apps/sleep.py", "--multirun", "hydra/launcher=vertex_pipelines", "hydra.mode=MULTIRUN", "+sleep=0",
       f"hydra.sweep.dir={sweep}"]
for i in range(count + 1):
    server.spawn([*entry[:3], "--num", str(i), *entry[3:], *app, f"+i={i}"], dict(os.environ), os.getcwd(), f"{sweep}.log").wait()
    if i == 0:  # the first one warms the disk cache
        first = process_cpu(server.helper.proc.pid)[1]
print((process_cpu(server.helper.proc.pid)[1] - first) / count)
server.close()
"""


def trial_cpu(count: int) -> None:
    """CPU time of one forked trial (its init included) of the sleep app with `+sleep=0`,
    started through local mode's fork server one after another, from /proc."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _TRIAL_CPU, f"{tmp}/sweep", str(count)],
            check=True,
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        ).stdout
    print(
        f"| a forked trial of the sleep app, 0 s | {float(out.split()[-1]):.3f} s CPU | `python benchmarks/run.py local-trial-cpu` |"
    )
