"""Command line of the pipeline builder, usable without Hydra.

  run-local PIPELINE_YAML          run a compiled pipeline.yaml on this machine
  emulator                         serve a local Vertex AI PipelineJobs API (and Cloud Storage)
  status SWEEP_DIR_OR_JOB          state of a submitted run (--wait: follow it to its end)
  results SWEEP_DIR_OR_JOB         the trials' results of a submitted run
  cancel SWEEP_DIR_OR_JOB          cancel a submitted run
  recover SWEEP_DIR                run again the trials that failed for the cloud's reasons
                                   (preempted, out of capacity, ...), as the launcher's
                                   recovery does, for a sweep submitted with wait=false or
                                   whose launcher stopped; exit 0 if every trial completed

SWEEP_DIR_OR_JOB is a sweep dir (its manifests say which runs it submitted), a manifest,
or a PipelineJob resource name (projects/P/locations/L/pipelineJobs/ID).
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.failures import rules_from_json, with_failures
from hydra_vertex_pipelines.components.report import error_headline, failure_kind, shown_error
from hydra_vertex_pipelines.components.sweep_files import GCS, SweepFiles, fuse_to_gcs

from .cloud import PipelineState, VertexTarget, gcs, vertex
from .recovery.attempts import DEFAULT_MAX_ATTEMPTS
from .spec import PathMap, manifest_beside, read_manifest, stage_files

# A submitted run: where it went, its resource name, and its manifest (None if named directly).
Run = Tuple[VertexTarget, str, Optional[Dict[str, Any]]]


def _mapping(text: str) -> Tuple[str, str]:
    prefix, sep, folder = text.partition("=")
    if not sep or not prefix.startswith(GCS) or not folder:
        raise argparse.ArgumentTypeError(f"--map {text!r}: expected gs://BUCKET/PREFIX=LOCAL_DIR")
    return prefix, folder


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
        prog="hydra-vertex-pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_run_local(sub)
    _add_emulator(sub)
    _add_run_commands(sub)
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


def _runs(target: str, api_endpoint: Optional[str]) -> List[Run]:
    """Each submitted run `target` names."""
    path = Path(target)
    if path.exists():
        manifests = sorted(path.glob(SweepFiles.MANIFESTS)) if path.is_dir() else [path]
        out: List[Run] = []
        for m in manifests:
            data = strict_json.loads(m.read_text(encoding="utf-8"))
            info = data.get("vertex")
            if info:
                # The sweep's latest PipelineJob: a recovered sweep lists every one in `jobs`.
                latest = (info.get("jobs") or [info["resource_name"]])[-1]
                out.append((VertexTarget(info["project"], info["location"], info.get("api_endpoint")), latest, data))
        if not out:
            raise SystemExit(f"error: {target} holds no manifest of a submitted run")
        return out
    parts = target.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[4] != "pipelineJobs":
        raise SystemExit(f"error: {target!r} is neither a sweep dir, a manifest, nor projects/P/locations/L/pipelineJobs/ID")
    return [(VertexTarget(parts[1], parts[3], api_endpoint), target, None)]


def _status(args: argparse.Namespace) -> int:
    worst = 0
    for target, name, _ in _runs(args.target, args.api_endpoint):
        vertex.init(target)
        job = vertex.attach(name)

        def show(state: str, tasks: Dict[str, Dict[str, Any]], name: str = name) -> None:
            counts: Dict[str, int] = {}
            for t in tasks.values():
                counts[t["state"]] = counts.get(t["state"], 0) + 1
            print(f"{name}: {state} ({', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items())) or 'no tasks yet'})")

        if args.wait:
            state = vertex.follow(job, args.poll_interval, show)
        else:
            state = job.state.name
            show(state, vertex.task_details(job))
        print(f"  {vertex.console_url(name)}")
        if state in (PipelineState.FAILED, PipelineState.CANCELLED):
            worst = 1
    return worst


def _results(args: argparse.Namespace) -> int:
    for target, name, manifest in _runs(args.target, args.api_endpoint):
        if manifest is None:
            raise SystemExit("error: results need the sweep dir or manifest (it says where the summary is)")
        storage = gcs.client(target.project)
        uri = fuse_to_gcs(manifest["summary_path"])
        summary = gcs.read_json(storage, uri)
        if summary is None:
            print(f"{name}: no summary at {uri} yet")
            continue
        _with_vertex_failures(target, name, manifest, summary)
        local = Path(manifest["pipeline_yaml"]).parent / Path(uri).name
        local.write_text(strict_json.dumps(summary, indent=2), encoding="utf-8")
        print(f"{name}: {summary['counts']}  (saved {local})")
        _print_trials(summary)
    return 0


def _print_trials(summary: Dict[str, Any]) -> None:
    """One line per trial: its status, overrides, and its value or why it failed."""
    for row in summary["trials"]:
        kind = failure_kind(row)
        error = shown_error(row)
        shown = f"[{kind}] {error_headline(error)}" if kind else strict_json.dumps(row.get("return_value"))
        attempts = len(row.get("attempts") or [])
        tries = f"  ({attempts} attempts)" if attempts > 1 else ""
        print(f"  #{row['number']:<4} {row['status']:<9} {' '.join(row['overrides']):<40} {shown}{tries}")


def _recover(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    from .recovery import RecoverError, recover_sweep, sweep_records

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    last: Dict[str, str] = {}

    def show(name: str, state: str, tasks: Dict[str, Dict[str, Any]]) -> None:
        line = f"{name}: {state}"
        if last.get(name) != line:
            print(line, flush=True)
        last[name] = line

    worst = 0
    try:
        for record in sweep_records(args.target):
            if args.api_endpoint:
                record = dataclasses.replace(
                    record, target=VertexTarget(record.target.project, record.target.location, args.api_endpoint)
                )
            done = recover_sweep(record, args.max_attempts, args.poll_interval, show)
            if done.summary is None:
                print(f"{record.sweep.run_id}: no summary: nothing to recover from")
                worst = 1
                continue
            if not done.submitted:
                print(f"{record.sweep.run_id}: nothing to recover (no failed trial of a recoverable kind with an attempt left)")
            print(f"{record.sweep.run_id}: {done.summary['counts']} over {len(record.jobs) + len(done.submitted)} PipelineJobs")
            _print_trials(done.summary)
            if set(done.summary["counts"]) != {"COMPLETED"} or len(done.summary["trials"]) != len(record.sweep.trials):
                worst = 1
    except RecoverError as e:
        raise SystemExit(f"error: {e}") from None
    except vertex.ConnectionLost as e:
        raise SystemExit(f"error: stopped following: {e}. The same command goes on from where it stopped.") from None
    except KeyboardInterrupt:
        print("stopped: the sweep's PipelineJobs go on in Vertex AI; the same command goes on from here", file=sys.stderr)
        return 130
    return worst


def _with_vertex_failures(target: VertexTarget, name: str, manifest: Dict[str, Any], summary: Dict[str, Any]) -> None:
    """Says why the failed trials that left no record failed, from their tasks and CustomJobs
    (one GET of the run, one per failed CustomJob), when the launcher did not already."""
    from .recovery.summary import unexplained, vertex_failures

    rows = unexplained(summary)
    if not rows:
        return
    vertex.init(target)
    tasks = vertex.task_details(vertex.attach(name))
    with_failures(summary, vertex_failures(rows, tasks, manifest, rules_from_json(manifest.get("failure_rules") or [])))


def _cancel(args: argparse.Namespace) -> int:
    for target, name, _ in _runs(args.target, args.api_endpoint):
        vertex.init(target)
        vertex.attach(name).cancel()
        print(f"cancel requested: {name}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "emulator":
        from .emulator import serve
        from .emulator.fault_spec import FaultSpecError, load_plan

        try:
            faults = load_plan(args.faults, args.fault, args.fault_seed, args.preemption_grace, args.job_creation_quota)
        except FaultSpecError as e:
            raise SystemExit(f"error: {e}") from None
        serve(
            args.data_dir,
            faults=faults,
            port=args.port,
            gcs_port=args.gcs_port,
            max_parallel=args.max_parallel,
            workdir=args.workdir,
            **({} if args.body_timeout is None else {"body_timeout": args.body_timeout}),
        )
        return 0
    if args.command in ("status", "results", "cancel", "recover"):
        return {"status": _status, "results": _results, "cancel": _cancel, "recover": _recover}[args.command](args)
    return _run_local(args)


def _run_local(args: argparse.Namespace) -> int:
    from .local import TaskState, UnsupportedPipeline, run_pipeline

    pipeline = args.pipeline.resolve()
    if not pipeline.is_file():
        print(f"error: no pipeline at {pipeline}", file=sys.stderr)
        return 2
    root = args.root or SweepFiles(pipeline.parent).run_local_buckets
    paths = PathMap(str(root), dict(args.map))
    manifest = manifest_beside(pipeline)
    try:
        if manifest is not None:
            for path in stage_files(read_manifest(manifest), paths):
                print(f"staged {path}")
        result = run_pipeline(
            pipeline,
            paths=paths,
            work_dir=args.work_dir,
            max_parallel=args.max_parallel,
            cwd=str(args.cwd) if args.cwd else None,
        )
    except (UnsupportedPipeline, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: running tasks were stopped; finished ones keep their outputs", file=sys.stderr)
        return 130
    width = max(len(t.display_name) for t in result.tasks.values())
    for task in result.tasks.values():
        where = task.output_dir or ""
        print(f"{task.state:<10} {task.display_name:<{width}}  {where}")
        if task.state == TaskState.FAILED and task.error:
            print("           " + task.error.strip().splitlines()[0])
    print(f"pipeline {result.state}")
    return 0 if result.state == TaskState.SUCCEEDED else 1
