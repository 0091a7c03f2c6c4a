"""The closed choices of the launcher's settings, and where its settings live.

A private module: Hydra's plugin scan executes this package's public modules again in
their namespaces, which would make new classes of these enums, unequal to the ones
already imported.
"""

from enum import Enum
from typing import List, Type

FIELD = "hydra.launcher"  # where the settings live, as errors name them


class Mode(Enum):
    SUBMIT = "submit"  # run on Vertex AI
    COMPILE = "compile"  # only write pipeline.yaml and the manifest
    LOCAL = "local"  # run the same pipeline.yaml on this machine


class FanOut(Enum):
    AUTO = "auto"  # TASKS for small sweeps without a limit, else PARALLEL_FOR
    TASKS = "tasks"  # one named task per trial
    PARALLEL_FOR = "parallel_for"  # one task looping over the trials, with a real limit


class FailurePolicy(Enum):
    SLOW = "slow"  # a failed trial lets the others finish
    FAST = "fast"  # a failed trial stops scheduling new tasks


class Direction(Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


def choices(kind: Type[Enum]) -> List[str]:
    """The values a setting of this kind accepts."""
    return [member.value for member in kind]
