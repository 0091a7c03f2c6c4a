"""Benchmarks of the launcher, printed as rows of the table in benchmarks/README.md.

    python benchmarks/run.py local-vs-joblib [--repeat 5]

local-vs-joblib: whole-process wall time of one Hydra multirun of 16 trials that each sleep
1 s, 4 at a time, in local mode against hydra-joblib-launcher (pip install
hydra-joblib-launcher). The runs alternate so both see the same machine load.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
SLEEP_APP = HERE / "apps" / "sleep.py"

LAUNCHERS = {
    "vertex_pipelines local": ["hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", "hydra.launcher.max_parallel=4"],
    "vertex_pipelines local, fresh interpreters": [
        "hydra/launcher=vertex_pipelines",
        "hydra.launcher.mode=local",
        "hydra.launcher.max_parallel=4",
        "hydra.launcher.fresh_interpreters=true",
    ],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"],
}


def wall_time(args: List[str]) -> float:
    with tempfile.TemporaryDirectory() as sweep:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(SLEEP_APP), "-m", *args, "+i=range(16)", "+sleep=1", f"hydra.sweep.dir={sweep}"],
            check=True,
            capture_output=True,
            cwd=HERE.parent,
        )
        return time.perf_counter() - start


def local_vs_joblib(repeat: int) -> None:
    times: Dict[str, List[float]] = {name: [] for name in LAUNCHERS}
    for _ in range(repeat):
        for name, args in LAUNCHERS.items():
            times[name].append(wall_time(args))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: median {median[name]:.2f} s over {repeat} runs ({', '.join(f'{x:.2f}' for x in t)})")
    command = f"`python benchmarks/run.py local-vs-joblib --repeat {repeat}`"
    for name in LAUNCHERS:
        ratio = median[name] / median["joblib"]
        print(f"| 16 trials x 1 s sleep, 4 at a time | {name} | {median[name]:.2f} s | {ratio:.2f}x | {command} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    run = sub.add_parser("local-vs-joblib")
    run.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.benchmark == "local-vs-joblib":
        local_vs_joblib(args.repeat)


if __name__ == "__main__":
    main()
