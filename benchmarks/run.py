"""Benchmarks of the launcher, printed as rows of the table in benchmarks/README.md.

    python benchmarks/run.py local-vs-joblib [--repeat 5]
    python benchmarks/run.py local-trial-cpu [--trials 8]
    python benchmarks/run.py compile [--sizes 10 100 1000 10000]
    python benchmarks/run.py compile-mode [--trials 100 --repeat 5]
    python benchmarks/run.py submit-requests [--trials 1000]
    python benchmarks/run.py package-env [--repeat 5]
    python benchmarks/run.py local-memory [--lines 0 2000000 6000000]
    python benchmarks/run.py recovery [--repeat 1]     (benchmarks/recovery.py)

compile: build+compile time, pipeline.yaml size and peak memory for N trials per fan-out
strategy, next to plain kfp code that unrolls the same CustomTrainingJobOp tasks. Each
measurement runs in a fresh process; imports (kfp, ~0.6 s) are reported apart.

local-memory: the launcher process's peak RSS (VmHWM, read as it exits) for a local sweep
of two trials that each print N lines as fast as they can, streamed to its console.

local-vs-joblib (local_vs_joblib.py): whole-process wall time of one Hydra multirun of 16
trials that each sleep 1 s, 4 at a time, in local mode (first runs and re-runs, forked and
fresh interpreters) against hydra-joblib-launcher, then the phases of a local run.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List

from local_vs_joblib import local_vs_joblib, trial_cpu

HERE = Path(__file__).resolve().parent
SLEEP_APP = HERE / "apps" / "sleep.py"
CHATTY_APP = HERE / "apps" / "chatty.py"


def compile_one(n: int, strategy: str) -> None:
    """In a fresh process: build and compile one sweep of n trials, print a JSON line."""
    start = time.perf_counter()
    from google_cloud_pipeline_components.v1.custom_job import CustomTrainingJobOp
    from kfp import compiler, dsl  # noqa: F401

    from hydra_plugins.vertex_pipelines_launcher._commands import job_args
    from hydra_plugins.vertex_pipelines_launcher.trial_entry import ENTRY_MODULE
    from hydra_vertex_pipelines.pipeline_builder.pipeline import compile_pipeline_spec
    from hydra_vertex_pipelines.pipeline_builder.spec import SweepSpec, TrialSettings, build_trial

    imported = time.perf_counter()
    # A trial as the launcher plans it: a two-value override and the arguments that make
    # it the sweep's job i (the trial entry's options, then the app's command line with the
    # sweep's Hydra overrides), in a run folder named as the launcher names it.
    settings = TrialSettings(image_uri="us-docker.pkg.dev/my-project/sweeps/train:latest")
    run = "train-20261123-231451-fd242f"
    root = f"gs://my-bucket/hydra-sweeps/{run}"
    app_args = ["train.py", "--config-name=config", "--multirun", "hydra/launcher=vertex_pipelines", "hydra.mode=MULTIRUN"]
    trials = tuple(
        build_trial(
            number=i,
            job_id=f"{run}_{i}",
            overrides=(overrides := [f"lr={i / n}", f"batch_size={32 + i % 4}"]),
            settings=settings,
            command=["python", "-m", ENTRY_MODULE],
            args=job_args(app_args, overrides, i, run, f"/gcs/{root[5:]}"),
            output_uri=f"{root}/{i}",
            name_prefix="train",
            labels={"hydra-app": "train", "hydra-run": run},
        )
        for i in range(n)
    )
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "pipeline.yaml")
        if strategy == "kfp-unrolled":

            @dsl.pipeline(name="train")
            def baseline() -> None:
                for t in trials:
                    CustomTrainingJobOp(**t.custom_job_inputs()).set_display_name(t.display_name)

            compiler.Compiler().compile(baseline, str(path))
        else:
            sweep = SweepSpec(
                name="train",
                run_id=run,
                pipeline_root="gs://my-bucket/hydra-sweeps",
                run_root=root,
                trials=trials,
                collector_image="us-docker.pkg.dev/p/r/train:1",
                fan_out=strategy,
                parallelism=50 if strategy == "parallel_for" else None,
            )
            compile_pipeline_spec(sweep, path)
        done = time.perf_counter()
        size = path.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"import_s": imported - start, "build_s": built - imported, "compile_s": done - built, "size": size, "peak_mb": peak}
        )
    )


def compile_sizes(sizes: List[int], skip_over: int) -> None:
    for n in sizes:
        for strategy in ("tasks", "parallel_for", "kfp-unrolled"):
            if strategy != "parallel_for" and n > skip_over:
                print(f"| {n} | {strategy} | not run: unrolled tasks grow linearly (see the 1,000 row x 10) | | | | |")
                continue
            out = subprocess.run(
                [sys.executable, __file__, "_compile-one", str(n), strategy],
                check=True,
                capture_output=True,
                text=True,
                cwd=HERE.parent,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            total = r["build_s"] + r["compile_s"]
            print(
                f"| {n} | {strategy} | {total:.2f} s | {r['size'] / 1e6:.2f} MB | {r['peak_mb']:.0f} MB | "
                f"{r['import_s']:.2f} s | `python benchmarks/run.py compile --sizes {n}` |"
            )


def compile_mode(trials: int, repeat: int) -> None:
    """Whole-process wall time of a compile-mode sweep, next to Hydra's basic launcher
    running the same sweep with a no-op task."""
    launchers = {
        "vertex_pipelines compile": [
            "hydra/launcher=vertex_pipelines",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://bkt/sweeps",
            "hydra.launcher.trial.image_uri=img",
        ],
        "basic, no-op task": ["hydra/launcher=basic"],
    }
    times: Dict[str, List[float]] = {name: [] for name in launchers}
    own: List[float] = []
    for _ in range(repeat):
        for name, args in launchers.items():
            with tempfile.TemporaryDirectory() as sweep:
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, str(SLEEP_APP), "-m", *args, f"+i=range({trials})", "+sleep=0", f"hydra.sweep.dir={sweep}"],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=HERE.parent,
                )
                times[name].append(time.perf_counter() - start)
                if name.startswith("vertex"):
                    own.append(_launcher_seconds(proc.stdout + proc.stderr))
    for name, t in times.items():
        print(
            f"| {trials} trials | {name} | {statistics.median(t):.2f} s | "
            f"`python benchmarks/run.py compile-mode --trials {trials} --repeat {repeat}` |"
        )
    print(f"launcher's own part (first to last log line of launch()): median {statistics.median(own):.2f} s")


def _launcher_seconds(log: str) -> float:
    """Seconds from the launcher's first log line (the batch listing) to its last (the
    written manifest), from Hydra's log timestamps."""
    stamps = []
    for line in log.splitlines():
        if line.startswith("[") and ("#0 :" in line or "manifest" in line):
            stamp = line[1 : line.index("]")]
            stamps.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"))
    return (stamps[-1] - stamps[0]).total_seconds()


def submit_requests(trials: int) -> None:
    """Requests at the Vertex emulator for one submit+wait of `trials` instant trials."""
    import os

    from gcp_storage_emulator.server import create_server

    from hydra_vertex_pipelines.pipeline_builder.emulator.server import VertexEmulator

    storage = create_server("127.0.0.1", 0, in_memory=True)
    storage.start()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{storage._api._httpd.server_address[1]}"
    with tempfile.TemporaryDirectory() as d:
        vertex = VertexEmulator(Path(d) / "vertex", workdir=HERE.parent)
        port = vertex.start()
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                str(SLEEP_APP),
                "-m",
                "hydra/launcher=vertex_pipelines",
                "hydra.launcher.mode=submit",
                f"hydra.launcher.api_endpoint=http://127.0.0.1:{port}",
                "hydra.launcher.project=local",
                "hydra.launcher.pipeline_root=gs://bkt/sweeps",
                "hydra.launcher.trial.image_uri=img",
                "hydra.launcher.poll_interval=5",
                "hydra.launcher.trial.entry=command",
                f"hydra.launcher.trial.command=[python,{HERE / 'apps' / 'instant.py'}]",
                f"+i=range({trials})",
                f"hydra.sweep.dir={Path(d) / 'sweep'}",
            ],
            check=True,
            capture_output=True,
            cwd=HERE.parent,
            env={**os.environ, "NO_GCE_CHECK": "True"},
            text=True,
        )
        elapsed = time.perf_counter() - start
        # The launcher logs "Summary: ..." when one read of the collector's summary gave
        # every result; without it, it read each trial's result.json.
        results = "one summary read" if "] Summary: " in proc.stdout + proc.stderr else "a result.json read per trial"
        vertex.stop()
    storage.stop()
    counts = ", ".join(f"{n} {m} {k}" for (m, k), n in sorted(vertex.requests.items()))
    print(
        f"| {trials} trials, poll every 5 s | {counts} | {results} | {elapsed:.0f} s | "
        f"`python benchmarks/run.py submit-requests --trials {trials}` |"
    )


_MAKE_ENV = """
import os, sys, time
from pathlib import Path
from hydra_vertex_pipelines.pipeline_builder.wheels import launcher_wheel
from hydra_vertex_pipelines.pipeline_builder.local import package_env
wheel = launcher_wheel.write_beside(Path(sys.argv[1]), "gs://b/r").local_path
start = time.perf_counter()
made = package_env.environment(sys.executable, [wheel])
took = time.perf_counter() - start
files = sum(len(f) for _, _, f in os.walk(made.root))
print(took, files)
"""


def package_env(repeat: int) -> None:
    """Making a package trial's environment (this launcher's wheel and what it declares):
    with an empty cache, then again in a new process once it is made."""
    cold, warm, files = [], [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**__import__("os").environ, "XDG_CACHE_HOME": tmp}
            for times in (cold, warm):
                out = subprocess.run(
                    [sys.executable, "-c", _MAKE_ENV, tmp], env=env, check=True, capture_output=True, text=True
                ).stdout
                took, count = out.split()
                times.append(float(took))
                files = int(count)
    command = f"`python benchmarks/run.py package-env --repeat {repeat}`"
    print(
        f"| launcher wheel + declared dependencies ({files} files) | empty cache | {statistics.median(cold):.2f} s | {command} |"
    )
    print(
        f"| launcher wheel + declared dependencies ({files} files) | made already | {statistics.median(warm):.3f} s | {command} |"
    )


# Runs the app in this process, as `python APP ARGS` would, and writes this process's peak
# RSS (kB) to the file named by argv[1] when it exits.
_PEAK_RSS = """
import atexit, runpy, sys
out, app = sys.argv[1], sys.argv[2]

def peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    open(out, "w").write(kb)

atexit.register(peak)
sys.argv = sys.argv[2:]
sys.path.insert(0, app.rsplit("/", 1)[0])
runpy.run_path(app, run_name="__main__")
"""


def local_memory(counts: List[int]) -> None:
    """The launcher's peak RSS for a local sweep of 2 trials printing N lines each."""
    command = f"`python benchmarks/run.py local-memory --lines {' '.join(str(n) for n in counts)}`"
    quiet = None
    for lines in counts:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "peak"
            args = ["hydra/launcher=vertex_pipelines", "hydra.launcher.mode=local", "+i=range(2)", f"+lines={lines}"]
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", _PEAK_RSS, str(out), str(CHATTY_APP), "-m", *args, f"hydra.sweep.dir={tmp}/sweep"],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=HERE.parent,
            )
            took = time.perf_counter() - start
            peak = int(out.read_text()) / 1024
        quiet = peak if quiet is None else quiet
        print(f"| 2 trials x {lines:,} lines | {peak:.0f} MB | {peak - quiet:+.0f} MB | {took:.1f} s | {command} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    run = sub.add_parser("local-vs-joblib")
    run.add_argument("--repeat", type=int, default=5)
    trial = sub.add_parser("local-trial-cpu")
    trial.add_argument("--trials", type=int, default=8)
    comp = sub.add_parser("compile")
    comp.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    comp.add_argument("--unrolled-up-to", type=int, default=1000, help="largest sweep to unroll into tasks")
    mode = sub.add_parser("compile-mode")
    mode.add_argument("--trials", type=int, default=100)
    mode.add_argument("--repeat", type=int, default=5)
    req = sub.add_parser("submit-requests")
    req.add_argument("--trials", type=int, default=1000)
    env = sub.add_parser("package-env")
    env.add_argument("--repeat", type=int, default=5)
    memory = sub.add_parser("local-memory")
    memory.add_argument("--lines", type=int, nargs="+", default=[0, 2_000_000, 6_000_000])
    sub.add_parser("recovery").add_argument("--repeat", type=int, default=1)
    one = sub.add_parser("_compile-one")
    one.add_argument("n", type=int)
    one.add_argument("strategy")
    args = parser.parse_args()
    if args.benchmark == "local-vs-joblib":
        local_vs_joblib(args.repeat)
    elif args.benchmark == "local-trial-cpu":
        trial_cpu(args.trials)
    elif args.benchmark == "compile":
        compile_sizes(args.sizes, args.unrolled_up_to)
    elif args.benchmark == "compile-mode":
        compile_mode(args.trials, args.repeat)
    elif args.benchmark == "submit-requests":
        submit_requests(args.trials)
    elif args.benchmark == "package-env":
        package_env(args.repeat)
    elif args.benchmark == "local-memory":
        local_memory(args.lines)
    elif args.benchmark == "recovery":
        from recovery import recovery_run

        recovery_run(args.repeat)
    else:
        compile_one(args.n, args.strategy)


if __name__ == "__main__":
    main()
