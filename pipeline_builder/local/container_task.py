"""Runs a container task (the collector) as its container's command, on this machine.

Its command is filled in as the KFP backend fills it, with cloud paths made local; the
executor output it writes becomes the task's outputs.
"""

import os
from pathlib import Path

from hydra_vertex_pipelines.components import strict_json

from .handlers import RunServices, TaskCall, TaskEnd, TaskHandler, processes_end
from .processes import Launch, python_command
from .resolver import executor_input, executor_outputs, filled_command


class ContainerHandler(TaskHandler):
    """Any container task that is not a CustomJob task."""

    def run(self, call: TaskCall, services: RunServices) -> TaskEnd:
        task, paths = call.task, services.paths
        task.output_dir = str(call.folder)
        given = executor_input(paths.in_value(call.inputs), executor_outputs(call.planned.component, call.folder))
        filled = filled_command(call.planned.container, given)
        command = python_command([paths.in_text(c) for c in filled], services.interpreter.python)
        log = str(call.folder / "task.log")
        task.log_paths = [log]
        # Not streamed: the KFP executor logs its whole input, every trial included.
        outcome = services.supervisor.run([Launch(command, services.interpreter.environment(call.tmp), log)])
        output_file = given["outputs"]["outputFile"]
        if os.path.exists(output_file):
            task.outputs = strict_json.loads(Path(output_file).read_text(encoding="utf-8"))
        return processes_end(outcome, services.stopping)
