"""`run-local`: a compiled pipeline.yaml run on this machine."""

import argparse
import sys

from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..spec import PathMap, manifest_beside, read_manifest, stage_files


def run_local(args: argparse.Namespace) -> int:
    from ..local import TaskState, UnsupportedPipeline, run_pipeline

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
