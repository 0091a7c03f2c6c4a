"""Runs a compiled pipeline.yaml on this machine, as Vertex would run it: `LocalRunner`
with its `RunnerSettings`, or `run_pipeline` for a pipeline file.

Its names load their module when first used. The fork server, the CustomJob check and
the reaper start as `python -c "from ...local.fork_server import serve; ..."` (or
`python -m ...local.reaper`), which imports this package first: it must not cost them
the runner's imports.
"""

from typing import TYPE_CHECKING, Dict

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:  # the names as type checkers see them; at run time, lazy_exports' __getattr__ below
    from .check_cache import CheckCache as CheckCache
    from .check_cache import cache_folder as cache_folder
    from .check_cache import sweep_signature as sweep_signature
    from .forked import ForkServer as ForkServer
    from .gcpc_check import CustomJobChecker as CustomJobChecker
    from .gcpc_check import CustomJobRejected as CustomJobRejected
    from .handlers import RunServices as RunServices
    from .handlers import TaskCall as TaskCall
    from .handlers import TaskEnd as TaskEnd
    from .handlers import TaskHandler as TaskHandler
    from .handlers import TaskHooks as TaskHooks
    from .interpreter import TaskInterpreter as TaskInterpreter
    from .interpreter import write_interpreter_files as write_interpreter_files
    from .phases import PhaseClock as PhaseClock
    from .phases import process_cpu as process_cpu
    from .plan import FINAL_STATES as FINAL_STATES
    from .plan import RunResult as RunResult
    from .plan import TaskFailure as TaskFailure
    from .plan import TaskKind as TaskKind
    from .plan import TaskRun as TaskRun
    from .plan import TaskState as TaskState
    from .plan import UnsupportedPipeline as UnsupportedPipeline
    from .plan import load_pipeline as load_pipeline
    from .processes import exit_reason as exit_reason
    from .processes import tail as tail
    from .reaper import Reaper as Reaper
    from .resolver import RunContext as RunContext
    from .runner import LocalRunner as LocalRunner
    from .runner import run_pipeline as run_pipeline
    from .runner import system_labels as system_labels
    from .settings import RunnerSettings as RunnerSettings
    from .settings import cpu_count as cpu_count

# name -> its module, as imported above
_EXPORTS: Dict[str, str] = {
    "CheckCache": "check_cache",
    "CustomJobChecker": "gcpc_check",
    "CustomJobRejected": "gcpc_check",
    "FINAL_STATES": "plan",
    "ForkServer": "forked",
    "LocalRunner": "runner",
    "PhaseClock": "phases",
    "Reaper": "reaper",
    "RunContext": "resolver",
    "RunResult": "plan",
    "RunServices": "handlers",
    "RunnerSettings": "settings",
    "TaskCall": "handlers",
    "TaskEnd": "handlers",
    "TaskFailure": "plan",
    "TaskHandler": "handlers",
    "TaskHooks": "handlers",
    "TaskInterpreter": "interpreter",
    "TaskKind": "plan",
    "TaskRun": "plan",
    "TaskState": "plan",
    "UnsupportedPipeline": "plan",
    "cache_folder": "check_cache",
    "cpu_count": "settings",
    "exit_reason": "processes",
    "load_pipeline": "plan",
    "process_cpu": "phases",
    "run_pipeline": "runner",
    "sweep_signature": "check_cache",
    "system_labels": "runner",
    "tail": "processes",
    "write_interpreter_files": "interpreter",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
