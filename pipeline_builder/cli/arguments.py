"""The command line's arguments: every subcommand, its options and their checks."""

import argparse
from pathlib import Path
from typing import Any, Tuple

from hydra_vertex_pipelines.components.sweep_files import GCS, SweepFiles

from ..recovery.attempts import DEFAULT_MAX_ATTEMPTS

HELP = """Command line of the pipeline builder, usable without Hydra.

  run-local PIPELINE_YAML          run a compiled pipeline.yaml on this machine
  emulator                         serve a local Vertex AI PipelineJobs API (and Cloud Storage)
  status SWEEP_DIR_OR_JOB          state of a submitted run (--wait: follow it to its end)
  results SWEEP_DIR_OR_JOB         the trials' results of a submitted run
  cancel SWEEP_DIR_OR_JOB          cancel a submitted run
  submit SWEEP_DIR                 submit a compiled sweep's pipeline.yaml as it is, without
                                   the app, with its manifest's settings (--wait: follow it)
  recover SWEEP_DIR                run again the trials that failed for the cloud's reasons
                                   (preempted, out of capacity, ...), as the launcher's
                                   recovery does, for a sweep submitted with wait=false or
                                   whose launcher stopped; exit 0 if every trial completed

SWEEP_DIR_OR_JOB is a sweep dir (its manifests say which runs it submitted), a manifest,
or a PipelineJob resource name (projects/P/locations/L/pipelineJobs/ID).
"""


def _mapping(text: str) -> Tuple[str, str]:
    prefix, sep, folder = text.partition("=")
    if not sep or not prefix.startswith(GCS) or not folder:
        raise argparse.ArgumentTypeError(f"--map {text!r}: expected gs://BUCKET/PREFIX=LOCAL_DIR")
    return prefix, folder


def _label(text: str) -> Tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label {text!r}: expected KEY=VALUE")
    return key, value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--max-parallel {text!r}: expected a whole number >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hydra-vertex-pipelines", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_run_local(sub)
    _add_emulator(sub)
    _add_run_commands(sub)
    _add_submit(sub)
    _add_recover(sub)
    return p


def _add_run_local(sub: Any) -> None:
    run = sub.add_parser("run-local", help="run a pipeline.yaml on this machine")
    run.add_argument("pipeline", type=Path, help="the compiled pipeline.yaml")
    run.add_argument(
        "--root",
        type=Path,
        help="local folder standing for Cloud Storage: gs://BUCKET/x lands in ROOT/BUCKET/x "
        f"(default: {SweepFiles.RUN_LOCAL_BUCKETS}/ beside the pipeline)",
    )
    run.add_argument(
        "--map",
        type=_mapping,
        action="append",
        default=[],
        metavar="GS_PREFIX=DIR",
        help="put everything under a gs:// prefix in DIR instead (repeatable)",
    )
    run.add_argument(
        "--max-parallel",
        type=_positive,
        help="most tasks running at once, as given even above the CPU count (default: one per CPU)",
    )
    run.add_argument("--work-dir", type=Path, help="for logs and artifacts of non-trial tasks")
    run.add_argument("--cwd", type=Path, help="working directory of the trials (default: this one)")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"--body-timeout {text!r}: expected a number of seconds > 0")
    return value


def _grace_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"--preemption-grace {text!r}: expected a number of seconds >= 0")
    return value


def _add_emulator(sub: Any) -> None:
    emu = sub.add_parser("emulator", help="serve a local Vertex AI PipelineJobs API backed by the local runner")
    emu.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".vertex-emulator"),
        help="jobs, their runs and Cloud Storage data, kept across restarts",
    )
    emu.add_argument("--port", type=int, default=8090, help="Vertex API port (0: any free port)")
    emu.add_argument("--gcs-port", type=int, default=9023, help="Cloud Storage emulator port (0: any free port)")
    emu.add_argument(
        "--max-parallel",
        type=_positive,
        help="most tasks of one run at once, as given even above the CPU count (default: one per CPU)",
    )
    emu.add_argument("--workdir", type=Path, help="stands for the image's working directory (default: this one)")
    emu.add_argument(
        "--body-timeout",
        type=_positive_seconds,
        help="seconds a request's body may take to arrive whole, else 400 (default: 30)",
    )
    emu.add_argument("--faults", type=Path, help="a YAML or JSON fault plan: CustomJobs fail as Vertex fails them (README)")
    emu.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[,key=value...]",
        help="one fault rule, e.g. preempt,rate=0.3,after=5 (kinds: preempt, quota, capacity, flex_start_expired, internal)",
    )
    emu.add_argument("--fault-seed", type=int, help="the seed of the faults' draws (default: the plan's, else 0)")
    emu.add_argument(
        "--preemption-grace", type=_grace_seconds, help="seconds from a preemption's SIGTERM to its SIGKILL (default: 30)"
    )
    emu.add_argument("--job-creation-quota", metavar="'N per minute'", help="refuse CreateCustomJob with 429 beyond N a minute")


def _add_run_commands(sub: Any) -> None:
    for name, text in (
        ("status", "state of a submitted run"),
        ("results", "the trials' results of a submitted run"),
        ("cancel", "cancel a submitted run"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("target", help="a sweep dir, a manifest.json, or a PipelineJob resource name")
        cmd.add_argument("--api-endpoint", help="for a resource name: the API endpoint (e.g. the emulator's)")
        if name == "status":
            cmd.add_argument("--wait", action="store_true", help="follow the run until it ends")
            cmd.add_argument("--poll-interval", type=float, default=15.0)


def _add_recover(sub: Any) -> None:
    cmd = sub.add_parser(
        "recover",
        help="run again a submitted sweep's trials that failed for the cloud's reasons",
        description="Follows the sweep's latest PipelineJob to its end, then submits new PipelineJobs of the "
        "sweep for its trials that failed for a recoverable kind (README, Recovery), as the launcher does. "
        "Exit 0 if every trial completed, else 1.",
    )
    cmd.add_argument("target", type=Path, help="the sweep dir (or one batch's manifest.json) of a submitted sweep")
    cmd.add_argument(
        "--max-attempts",
        type=_positive,
        help="attempts per trial, the first included (default: the sweep's recovery.max_attempts, "
        f"or {DEFAULT_MAX_ATTEMPTS} if it is 1)",
    )
    cmd.add_argument("--poll-interval", type=_positive_seconds, default=15.0, help="seconds between two polls (default 15)")
    cmd.add_argument("--api-endpoint", help="the API endpoint (e.g. the emulator's), instead of the one the manifest records")


def _add_submit(sub: Any) -> None:
    cmd = sub.add_parser(
        "submit",
        help="submit a compiled sweep's pipeline.yaml as it is, without the app",
        description="Submits each compiled batch of the sweep dir (mode=compile wrote its pipeline.yaml and "
        "manifest.json) as a PipelineJob: the file byte for byte, with the settings its manifest records, "
        "which the flags fill or override. Uploads the files the run reads from its bucket (its pickled jobs, "
        "trial list, and the wheels of trial.code=package, each only if the bucket lacks it). The app is not "
        "imported. A sweep submitted already is refused unless --new-run.",
    )
    cmd.add_argument("target", type=Path, help="the compiled sweep dir (or one batch's manifest.json)")
    cmd.add_argument("--project", help="the Google Cloud project (default: the compiled one, else the ADC project)")
    cmd.add_argument("--location", help="the Vertex AI region (default: the compiled hydra.launcher.location)")
    cmd.add_argument("--api-endpoint", help="the API endpoint, e.g. the emulator's (default: the compiled one)")
    cmd.add_argument("--service-account", help="the PipelineJob's service account")
    cmd.add_argument("--network", help="the VPC network the PipelineJob peers with")
    cmd.add_argument("--experiment", help="the Vertex AI experiment to associate the PipelineJob with")
    cmd.add_argument("--encryption-spec-key-name", help="the Cloud KMS key of the PipelineJob")
    cmd.add_argument("--display-name", help="the PipelineJob's display name (default: the compiled one)")
    cmd.add_argument(
        "--label",
        type=_label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of the PipelineJob, added to (or replacing one of) the compiled ones (repeatable)",
    )
    cmd.add_argument("--no-cache", action="store_true", help="run every task again: enable_caching=false")
    cmd.add_argument(
        "--new-run",
        action="store_true",
        help="submit a sweep submitted already again, as a new PipelineJob of the same run (its trial folders: "
        "Vertex's cache skips the trials that succeeded, unless --no-cache)",
    )
    cmd.add_argument("--force", action="store_true", help="submit a pipeline.yaml edited since it was compiled")
    cmd.add_argument("--wait", action="store_true", help="follow the run to its end, then print its results")
    cmd.add_argument("--poll-interval", type=_positive_seconds, help="seconds between two polls (default 15; 1 for an emulator)")
