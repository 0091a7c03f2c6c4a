"""Compile mode: write pipeline.yaml and the manifest, say how to run them, run nothing."""

import logging
import shlex
from typing import List

from hydra.core.utils import JobReturn

from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.command_name import command_name

from ._choices import FIELD, Mode
from ._commands import app_program
from ._context import LaunchContext
from ._planning import Batch
from ._returns import returns_without_values
from ._writing import announce, write_batch

log = logging.getLogger(__name__)


def submit_hint(context: LaunchContext) -> str:
    """The command that runs the same sweep on Vertex AI."""
    argv = [a for a in context.argv if not a.startswith(f"{FIELD}.mode=")]
    return shlex.join(["python", *app_program(context.cwd), *argv, f"{FIELD}.mode={Mode.SUBMIT.value}"])


def submit_command(batch: Batch) -> str:
    """The command that submits this very pipeline file, without the app; a project the
    launch did not know is the one flag it needs (or Application Default Credentials' project)."""
    settings = batch.compiled_for
    needs = [] if settings is None or settings.target.project else ["--project", "PROJECT"]
    return f"{command_name()} {shlex.join(['submit', str(batch.sweep_dir), *needs])}"  # the name may be `python -m ...`


def run(context: LaunchContext, batch: Batch) -> List[JobReturn]:
    """Compile mode: the files, and how to run them."""
    announce(batch)
    written = write_batch(batch)
    batch = written.batch
    log.info(f"To run it on Vertex AI: {submit_hint(context)}")
    if batch.packages:
        from hydra_vertex_pipelines.pipeline_builder.wheels.project_wheel import upload_command

        log.info(
            "The trials run from the wheels under "
            f"{SweepFiles(batch.sweep_dir).packages()} (this launcher's and the project's); `submit` uploads each one "
            "the bucket lacks, or upload them yourself: " + " && ".join(upload_command(p) for p in batch.packages)
        )
    if batch.pickles or batch.sweep.trials_file:
        log.info(
            f"It reads files written under {batch.sweep_dir} (pickled jobs, the trial list) from "
            f"{batch.sweep.run_root}: `submit` uploads them, and `{command_name()} run-local` "
            "puts them where its run reads them"
        )
    log.info(f"To submit this very file, without the app: {submit_command(batch)}")
    return returns_without_values(context, batch.sweep.trials, written.pipeline_path, "mode=compile")
