"""The recovery acceptance run as a benchmark: wall time and the launcher's requests.

`python benchmarks/run.py recovery`: the emulator started from its command line in
examples/preemptible with tests/apps/faults/acceptance.yaml's faults (30% of first attempts
preempted 6 s in, a 429 for a quarter of the first CustomJob creations) and 10 tasks at
once; the example's trainer swept over 20 learning rates on Spot, 100 steps of 0.1 s, with
`recovery.max_attempts=3` and a 3 s `quota_backoff`, followed with a poll every 0.5 s.
Prints a row of the table in benchmarks/README.md: the sweep's whole-process wall time,
its PipelineJobs, and the requests of the launcher (the access log's `client` sender) by
call, beside gcpc's launcher's and the emulator's own.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE = REPO / "examples" / "preemptible"
PLAN = REPO / "tests" / "apps" / "faults" / "acceptance.yaml"
TRIALS = 20
GREETING = re.compile(r"Vertex AI emulator on (http://127\.0\.0\.1:\d+), Cloud Storage emulator on (http://127\.0\.0\.1:\d+)")
LOGGED = re.compile(r"requests logged in (\S+)$")


def _start_emulator(data_dir: Path) -> Tuple[subprocess.Popen, str, str, Path]:
    cli = str(Path(sys.executable).parent / "hydra-vertex-pipelines")
    args = [cli, "emulator", "--data-dir", str(data_dir), "--port", "0", "--gcs-port", "0"]
    args += ["--faults", str(PLAN), "--max-parallel", "10"]
    proc = subprocess.Popen(args, cwd=EXAMPLE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    api = gcs = ""
    for line in proc.stdout:
        found = GREETING.search(line)
        if found:
            api, gcs = found.groups()
        logged = LOGGED.search(line.strip())
        if logged:
            return proc, api, gcs, Path(logged.group(1))
    raise RuntimeError(f"the emulator ended before it served (exit {proc.wait()})")


def _sweep(api: str, gcs: str, sweep_dir: Path) -> Tuple[subprocess.CompletedProcess, float]:
    lrs = ",".join(str(round(0.01 * (i + 1), 2)) for i in range(TRIALS))
    args = [
        "-m",
        "hydra.launcher.mode=submit",
        f"hydra.launcher.api_endpoint={api}",
        "hydra.launcher.project=local",
        "hydra.launcher.pipeline_root=gs://benchmark/sweeps",
        "hydra.launcher.trial.image_uri=local",
        "hydra.launcher.poll_interval=0.5",
        "hydra.launcher.trial.strategy=SPOT",
        "hydra.launcher.recovery.max_attempts=3",
        "hydra.launcher.recovery.quota_backoff=3",
        "steps=100",
        f"hydra.sweep.dir={sweep_dir}",
        f"lr={lrs}",
    ]
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True)
    return proc, time.perf_counter() - start


def _counts(entries: List[Dict[str, Any]]) -> Tuple[Counter, Counter]:
    """The launcher's requests by call, and everyone's totals by sender."""
    launcher = Counter(f"{'gcs ' if e['service'] == 'storage' else ''}{e['call']}" for e in entries if e["sender"] == "client")
    senders = Counter(e["sender"] for e in entries)
    return launcher, senders


def recovery_run(repeat: int) -> None:
    from hydra_vertex_pipelines.pipeline_builder.emulator.access_log import read_access_log

    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            emulator, api, gcs, log = _start_emulator(Path(tmp) / "data")
            try:
                proc, took = _sweep(api, gcs, Path(tmp) / "sweep")
            finally:
                emulator.send_signal(signal.SIGTERM)
                emulator.wait(timeout=60)
            if proc.returncode != 0:
                raise SystemExit(f"the sweep exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
            summary = json.loads((Path(tmp) / "sweep" / "summary.json").read_text())
            jobs = json.loads((Path(tmp) / "sweep" / "manifest.json").read_text())["vertex"]["jobs"]
            entries = read_access_log(log)
        kinds = Counter((t["attempts"][0]["failure"] or {}).get("kind") for t in summary["trials"])
        launcher, senders = _counts(entries)
        polls = launcher.pop("get", 0)
        calls = ", ".join(f"{n} {k}" for k, n in sorted(launcher.items()))
        print(
            f"| {TRIALS} Spot trials: {kinds['preempted']} preempted, {kinds['quota']} refused (429) | "
            f"{summary['counts']} in {len(jobs)} PipelineJobs | {took:.1f} s | {polls} polls; {calls} | "
            f"{senders['gcpc_launcher']} gcpc, {senders['emulator']} emulator | `python benchmarks/run.py recovery` |"
        )
