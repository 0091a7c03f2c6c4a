"""Trial specs -> one KFP pipeline -> pipeline.yaml.

Every trial is one CustomTrainingJobOp task, all in parallel; one collector task follows
them and runs however they ended.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

from .cloud_paths import gcs_to_fuse
from .trials import TrialSpec, trial_rows

COLLECTOR_TASK_NAME = "collect trials"


@dataclass(frozen=True)
class SweepSpec:
    """One sweep batch: the pipeline's identity, its trials and its collector."""

    name: str
    run_id: str
    pipeline_root: str
    run_root: str  # gs:// folder of this run; the summary lands here
    trials: Tuple[TrialSpec, ...]
    collector_image: str
    description: str = ""
    summary_name: str = "summary.json"

    @property
    def summary_path(self) -> str:
        """Where the collector writes the summary, as the collector sees it (/gcs/...)."""
        return f"{gcs_to_fuse(self.run_root)}/{self.summary_name}"


def build_pipeline(sweep: SweepSpec) -> Any:
    """The KFP pipeline (a GraphComponent) for `sweep`."""
    from google_cloud_pipeline_components.v1.custom_job import CustomTrainingJobOp
    from kfp import dsl

    from components.collector_op import collector_op

    collect = collector_op(sweep.collector_image)

    @dsl.pipeline(name=sweep.name, description=sweep.description, pipeline_root=sweep.pipeline_root)
    def sweep_pipeline() -> None:
        tasks = []
        for trial in sweep.trials:
            task = CustomTrainingJobOp(**trial.custom_job_inputs())
            task.set_display_name(trial.display_name)
            tasks.append(task)
        collector = collect(trials=trial_rows(sweep.trials), summary_path=sweep.summary_path)
        collector.set_display_name(COLLECTOR_TASK_NAME)
        collector.after(*tasks)
        collector.ignore_upstream_failure()

    return sweep_pipeline


def trial_task_names(spec: Dict[str, Any]) -> Dict[str, str]:
    """Output folder (base_output_directory) -> task name, from a compiled spec: how a
    trial is found among the task details Vertex reports."""
    out = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        base = task.get("inputs", {}).get("parameters", {}).get("base_output_directory", {})
        if "runtimeValue" in base:
            out[base["runtimeValue"]["constant"]] = name
    return out


def compile_pipeline(sweep: SweepSpec, path: Path) -> Path:
    """Writes the pipeline.yaml for `sweep` at `path` (atomically) and returns the path."""
    from kfp import compiler

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.yaml")
    compiler.Compiler().compile(build_pipeline(sweep), str(tmp))
    tmp.replace(path)
    return path
