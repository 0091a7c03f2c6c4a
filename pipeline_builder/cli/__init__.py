"""The `hydra-vertex-pipelines` command (`arguments.HELP` lists its subcommands), usable
without Hydra: one module per group of subcommands."""

import argparse
from typing import Callable, List, Optional

from . import runs
from .arguments import parser
from .recover import recover
from .run_local import run_local
from .submit import submit

__all__ = ["main", "parser"]


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "emulator":
        from ..emulator import serve
        from ..emulator.fault_spec import FaultSpecError, load_plan

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
    if args.command in ("status", "results", "cancel", "recover", "submit"):
        commands = {"status": runs.status, "results": runs.results, "cancel": runs.cancel, "recover": recover, "submit": submit}
        command = commands[args.command]
        return _with_credentials(command, args)
    return run_local(args)


def _with_credentials(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Runs a command that talks to Google Cloud; missing credentials are one line that says
    what to set, not a traceback."""
    from google.auth.exceptions import DefaultCredentialsError

    from ..cloud.gcs import EMULATOR_HOST
    from ..cloud.vertex import ADC_HELP

    try:
        return command(args)
    except DefaultCredentialsError as e:
        raise SystemExit(
            f"error: no Google Cloud credentials ({str(e).rstrip('. ')}). {ADC_HELP}. For a run submitted to the "
            f"emulator, set {EMULATOR_HOST} to its Cloud Storage address (the emulator prints it as it starts)."
        ) from None
