"""`status`, `results` and `cancel`: what a submitted run is doing, what it found, and stopping it."""

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.collector import MISSING
from hydra_vertex_pipelines.components.failures import rules_from_json, with_failures
from hydra_vertex_pipelines.components.live_summary import UNFINISHED_STATUSES, best_text, live_text
from hydra_vertex_pipelines.components.report import counts_text, error_headline, failure_kind, shown_error
from hydra_vertex_pipelines.components.sweep_files import SweepFiles, fuse_to_gcs
from hydra_vertex_pipelines.components.trial_result import COMPLETED

from ..cloud import PipelineState, VertexTarget, gcs, vertex
from ..cloud.progress import counts_line, trial_counts
from ..cloud.states import PIPELINE_ENDED
from ..live import RELOAD_S, LiveReport, RecordsSoFar, RunView, summary_now

# A submitted run: where it went, its resource name, and its manifest (None if named directly).
Run = Tuple[VertexTarget, str, Optional[Dict[str, Any]]]


def runs(target: str, api_endpoint: Optional[str]) -> List[Run]:
    """Each submitted run `target` names."""
    path = Path(target)
    if path.exists():
        manifests = SweepFiles.manifests_in(path)
        out: List[Run] = []
        for m in manifests:
            data = strict_json.loads(m.read_text(encoding="utf-8"))
            info = data.get("vertex")
            if info:
                gcs.use_recorded_emulator(info.get("storage_emulator_host"))
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


def trial_tasks(manifest: Optional[Dict[str, Any]], name: str) -> Tuple[List[str], int]:
    """The trials' task names in the run's first PipelineJob (a recovery attempt's tasks
    and a run named by its resource name are told apart from the collector by name), and
    the trial count (0: unknown)."""
    if manifest is None:
        return [], 0
    trials = manifest.get("trials") or []
    first = (manifest.get("vertex") or {}).get("resource_name") == name
    return ([t["task_name"] for t in trials if t.get("task_name")] if first else []), len(trials) if first else 0


def job_view(manifest: Dict[str, Any], job: Any) -> Tuple[RunView, Optional[float]]:
    """The run as one of its PipelineJobs sees it, and when that job started if it reuses
    the run's folders (a record older than that is an earlier attempt's)."""
    view = RunView.of_manifest(manifest)
    first = (manifest.get("vertex") or {}).get("resource_name") == job.resource_name
    if not first:  # a recovery attempt's PipelineJob: its tasks are not the ones the manifest names
        view = dataclasses.replace(view, task_names={n: None for n in view.task_names})
    # A PipelineJob that resumes the run or recovers its trials: older records are earlier attempts'.
    resumed = not first or manifest.get("job_id") not in (None, "", manifest.get("run_id"))
    return view, job.gca_resource.create_time.timestamp() if resumed else None


def live_report(manifest: Dict[str, Any], target: VertexTarget, job: Any, poll_interval: float) -> LiveReport:
    """`status --wait` of a sweep dir keeps its report.html live, as the launcher does while it follows."""
    sweep = manifest.get("sweep") or {}
    path = SweepFiles(Path(manifest["pipeline_yaml"]).parent, str(sweep.get("tag") or "")).report
    view, started = job_view(manifest, job)
    return LiveReport(view, gcs.client(target.project), path, started, max(poll_interval, RELOAD_S))


def refreshed(live: Optional[LiveReport], state: str, tasks: Dict[str, Dict[str, Any]]) -> str:
    """The live report refreshed, and the best trial so far, for the status line."""
    text = live.best_after(state, tasks, lambda warning: print(f"  ({warning})")) if live is not None else ""
    return f"; {text}" if text else ""


def status(args: argparse.Namespace) -> int:
    worst = 0
    for target, name, manifest in runs(args.target, args.api_endpoint):
        vertex.init(target)
        job = vertex.attach(name)

        names, total = trial_tasks(manifest, name)
        live = live_report(manifest, target, job, args.poll_interval) if args.wait and manifest else None

        def show(
            state: str,
            tasks: Dict[str, Dict[str, Any]],
            name: str = name,
            names: List[str] = names,
            total: int = total,
            live: Any = live,
        ) -> None:
            counts = trial_counts(tasks, names)
            print(f"{name}: {state} ({counts_line(counts, total or sum(counts.values()))}){refreshed(live, state, tasks)}")

        if args.wait:
            state = vertex.follow(job, args.poll_interval, show)
        else:
            state = job.state.name
            show(state, vertex.task_details(job))
        print(f"  {vertex.console_url(name, target.api_endpoint)}")
        if state in (PipelineState.FAILED, PipelineState.CANCELLED):
            worst = 1
    return worst


def results(args: argparse.Namespace) -> int:
    for target, name, manifest in runs(args.target, args.api_endpoint):
        if manifest is None:
            raise SystemExit("error: results need the sweep dir or manifest (it says where the summary is)")
        storage = gcs.client(target.project)
        uri = fuse_to_gcs(manifest["summary_path"])
        summary = gcs.read_json(storage, uri)
        if summary is None:
            _from_records(target, name, manifest, storage, uri)
            continue
        with_vertex_failures(target, name, manifest, summary)
        local = Path(manifest["pipeline_yaml"]).parent / Path(uri).name
        local.write_text(strict_json.dumps(summary, indent=2), encoding="utf-8")
        _copy_final_report(storage, manifest)
        print(f"{name}: {counts_text(summary['counts'])}  (saved {local})")
        print_trials(summary)
    return 0


def _from_records(target: VertexTarget, name: str, manifest: Dict[str, Any], storage: Any, uri: str) -> None:
    """No summary: while the run goes on, what has finished (the rows the live report shows);
    once it ended without its collector (cancelled, failed), every trial from its own record.
    One listing of the run's folder, then only the records that are there."""
    vertex.init(target)
    job = vertex.attach(name)
    state = str(job.state.name)
    ended = state in PIPELINE_ENDED
    print(f"{name}: {state}: no summary at {uri}" + ("" if ended else " yet") + "; from the trials' own records:")
    view, started = job_view(manifest, job)
    records = RecordsSoFar(storage, view.run_root, view.output_uris)
    summary = summary_now(view, records, vertex.task_details(job), ended, started)
    for row in summary["trials"]:
        if row["status"] == MISSING:
            shown = "no record"
        elif row["status"] in UNFINISHED_STATUSES:
            shown = "not finished"
        elif row["status"] == COMPLETED:
            shown = strict_json.dumps(row.get("return_value"))
        else:
            shown = error_headline(row.get("error"))
        print(f"  #{row['number']:<4} {row['status']:<9} {' '.join(row['overrides']):<40} {shown}")
    best = best_text(summary)
    print(f"  {live_text(summary)}" + (f"; {best}" if best else ""))


def _copy_final_report(storage: Any, manifest: Dict[str, Any]) -> None:
    """The collector's report.html into the sweep dir, where it replaces a live one."""
    tag = str((manifest.get("sweep") or {}).get("tag") or "")
    data = gcs.read_bytes(storage, SweepFiles(manifest["run_root"], tag).report)
    if data is not None:
        write_atomic(SweepFiles(Path(manifest["pipeline_yaml"]).parent, tag).report, data)


def print_trials(summary: Dict[str, Any]) -> None:
    """One line per trial: its status, overrides, and its value or why it failed."""
    for row in summary["trials"]:
        kind = failure_kind(row)
        error = shown_error(row)
        shown = f"[{kind}] {error_headline(error)}" if kind else strict_json.dumps(row.get("return_value"))
        attempts = len(row.get("attempts") or [])
        tries = f"  ({attempts} attempts)" if attempts > 1 else ""
        print(f"  #{row['number']:<4} {row['status']:<9} {' '.join(row['overrides']):<40} {shown}{tries}")


def with_vertex_failures(target: VertexTarget, name: str, manifest: Dict[str, Any], summary: Dict[str, Any]) -> None:
    """Says why the failed trials that left no record failed, from their tasks and CustomJobs
    (one GET of the run, one per failed CustomJob), when the launcher did not already."""
    from ..recovery.summary import unexplained, vertex_failures

    rows = unexplained(summary)
    if not rows:
        return
    vertex.init(target)
    tasks = vertex.task_details(vertex.attach(name))
    with_failures(summary, vertex_failures(rows, tasks, manifest, rules_from_json(manifest.get("failure_rules") or [])))


def cancel(args: argparse.Namespace) -> int:
    """Cancels each run named; one that has already ended is said so, and the exit code is 1."""
    worst = 0
    for target, name, _ in runs(args.target, args.api_endpoint):
        vertex.init(target)
        job = vertex.attach(name)
        state = str(job.state.name)
        if state in PIPELINE_ENDED:
            print(f"{name}: already ended ({state}): nothing to cancel")
            worst = 1
            continue
        job.cancel()
        print(f"cancel requested: {name} (it was {state})")
    return worst
