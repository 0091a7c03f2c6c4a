"""How to run the `hydra-vertex-pipelines` command from where the launcher runs, for the
hints it prints: the bare name only if this terminal's PATH finds this installation's."""

import shutil
import sys
from pathlib import Path

COMMAND = "hydra-vertex-pipelines"


def command_name() -> str:
    """`hydra-vertex-pipelines` when PATH finds this environment's; else that script's path
    (`.venv/bin/hydra-vertex-pipelines`, relative to here when it is below); else
    `python -m` of the command line with this interpreter."""
    installed = Path(sys.executable).with_name(COMMAND)  # not resolved: a venv's python is a link
    found = shutil.which(COMMAND)
    if found and installed.exists() and Path(found).resolve() == installed.resolve():
        return COMMAND
    if installed.exists():
        try:
            return str(installed.relative_to(Path.cwd()))
        except ValueError:
            return str(installed)
    return f"{sys.executable} -m hydra_vertex_pipelines.pipeline_builder"
