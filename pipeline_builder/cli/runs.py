"""`status`, `results` and `cancel`: what a submitted run is doing, what it found, and stopping it."""

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.failures import rules_from_json, with_failures
from hydra_vertex_pipelines.components.report import error_headline, failure_kind, shown_error
from hydra_vertex_pipelines.components.sweep_files import SweepFiles, fuse_to_gcs

from ..cloud import PipelineState, VertexTarget, gcs, vertex

# A submitted run: where it went, its resource name, and its manifest (None if named directly).
Run = Tuple[VertexTarget, str, Optional[Dict[str, Any]]]


def runs(target: str, api_endpoint: Optional[str]) -> List[Run]:
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


def status(args: argparse.Namespace) -> int:
    worst = 0
    for target, name, _ in runs(args.target, args.api_endpoint):
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


def results(args: argparse.Namespace) -> int:
    for target, name, manifest in runs(args.target, args.api_endpoint):
        if manifest is None:
            raise SystemExit("error: results need the sweep dir or manifest (it says where the summary is)")
        storage = gcs.client(target.project)
        uri = fuse_to_gcs(manifest["summary_path"])
        summary = gcs.read_json(storage, uri)
        if summary is None:
            print(f"{name}: no summary at {uri} yet")
            continue
        with_vertex_failures(target, name, manifest, summary)
        local = Path(manifest["pipeline_yaml"]).parent / Path(uri).name
        local.write_text(strict_json.dumps(summary, indent=2), encoding="utf-8")
        print(f"{name}: {summary['counts']}  (saved {local})")
        print_trials(summary)
    return 0


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
    for target, name, _ in runs(args.target, args.api_endpoint):
        vertex.init(target)
        vertex.attach(name).cancel()
        print(f"cancel requested: {name}")
    return 0
