"""Command line: `python -m pipeline_builder run-local PIPELINE_YAML`.

Runs a compiled pipeline.yaml on this machine without Hydra, for example one written by
compile mode, to debug it before paying for cloud time.
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def _mapping(text: str) -> tuple:
    prefix, sep, folder = text.partition("=")
    if not sep or not prefix.startswith("gs://") or not folder:
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
    p = argparse.ArgumentParser(prog="python -m pipeline_builder", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-local", help="run a pipeline.yaml on this machine")
    run.add_argument("pipeline", type=Path, help="the compiled pipeline.yaml")
    run.add_argument(
        "--root",
        type=Path,
        help="local folder standing for Cloud Storage: gs://BUCKET/x lands in ROOT/BUCKET/x "
        "(default: gcs/ beside the pipeline)",
    )
    run.add_argument(
        "--map",
        type=_mapping,
        action="append",
        default=[],
        metavar="GS_PREFIX=DIR",
        help="put everything under a gs:// prefix in DIR instead (repeatable)",
    )
    run.add_argument("--max-parallel", type=_positive, help="most tasks running at once (default: CPU count)")
    run.add_argument("--work-dir", type=Path, help="for logs and artifacts of non-trial tasks")
    run.add_argument("--cwd", type=Path, help="working directory of the trials (default: this one)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    from .cloud_paths import PathMap
    from .local_runner import UnsupportedPipeline, run_pipeline

    pipeline = args.pipeline.resolve()
    if not pipeline.is_file():
        print(f"error: no pipeline at {pipeline}", file=sys.stderr)
        return 2
    root = args.root or pipeline.parent / "gcs"
    paths = PathMap(str(root), dict(args.map))
    try:
        result = run_pipeline(
            pipeline,
            paths=paths,
            work_dir=args.work_dir,
            max_parallel=args.max_parallel,
            cwd=str(args.cwd) if args.cwd else None,
        )
    except UnsupportedPipeline as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: running tasks were stopped; finished ones keep their outputs", file=sys.stderr)
        return 130
    width = max(len(t.display_name) for t in result.tasks.values())
    for task in result.tasks.values():
        where = task.output_dir or ""
        print(f"{task.state:<10} {task.display_name:<{width}}  {where}")
        if task.state == "FAILED" and task.error:
            print("           " + task.error.strip().splitlines()[0])
    print(f"pipeline {result.state}")
    return 0 if result.state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
