"""`recover`: the launcher's recovery, for a sweep it does not follow."""

import argparse
import sys
from typing import Any, Dict

from hydra_vertex_pipelines.components.report import counts_text

from ..cloud import VertexTarget, vertex
from .runs import print_trials


def recover(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    from ..recovery import RecoverError, recover_sweep, sweep_records

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
            print(f"{record.sweep.run_id}: {counts_text(done.summary['counts'])} over {len(record.jobs) + len(done.submitted)} PipelineJobs")
            print_trials(done.summary)
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
