"""Trial specs -> one KFP pipeline -> pipeline.yaml.

Every trial is one CustomTrainingJobOp task, all in parallel; one collector task follows
them and runs however they ended.
"""

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.sweep_files import gcs_to_fuse

from .spec import SweepSpec, TrialSpec, trial_rows

COLLECTOR_TASK_NAME = "collect trials"
TRIALS_GROUP = "trials"


# CustomTrainingJobOp's own defaults, for inputs some trials set and others leave unset.
_JOB_INPUT_DEFAULTS: Dict[str, Any] = {
    "timeout": "604800s",
    "max_wait_duration": "86400s",
    "service_account": "",
    "network": "",
    "tensorboard": "",
    "encryption_spec_key_name": "",
    "reserved_ip_ranges": [],
    "persistent_resource_id": "",
    "psc_interface_config": {},
    "disable_retries": False,
}
# How a loop item's field is typed for kfp, which types every field of a dict item as a string.
_CHANNEL_TYPES = {list: "List", dict: "Dict", bool: "Boolean", int: "Integer", float: "Float", str: "String"}


# Inputs that are each trial's own, so always loop items: a loop over one trial still
# has fields in its item (kfp cannot type an empty one).
_PER_TRIAL_INPUTS = ("base_output_directory", "display_name")


def loop_items(trials: Tuple[TrialSpec, ...]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The CustomTrainingJobOp inputs of every trial, split into per-trial loop items and
    the constants they all share (shared inputs are written once, not once per trial)."""
    inputs = [t.custom_job_inputs() for t in trials]
    keys = sorted({k for i in inputs for k in i})
    for i in inputs:
        for k in keys:
            i.setdefault(k, _JOB_INPUT_DEFAULTS.get(k))
    varying = [k for k in keys if k in _PER_TRIAL_INPUTS or any(i[k] != inputs[0][k] for i in inputs)]
    constants = {k: inputs[0][k] for k in keys if k not in varying}
    return [{k: i[k] for k in varying} for i in inputs], constants


def _job_op(trials: Tuple[TrialSpec, ...]) -> Any:
    """CustomTrainingJobOp, or its twin that can turn Vertex's own retries off when a
    trial asks for that (CustomTrainingJobOp has no such input)."""
    if any(t.job_settings.get("disable_retries") for t in trials):
        from hydra_vertex_pipelines.components.custom_job_op import custom_training_job_no_vertex_retries

        return custom_training_job_no_vertex_retries
    from google_cloud_pipeline_components.v1.custom_job import CustomTrainingJobOp

    return CustomTrainingJobOp


def import_kfp() -> None:
    """Imports kfp for compiling, without the API client its package's `__init__` imports
    (`kfp.Client`, which imports the kubernetes package: about 0.3 s of CPU that compiling
    never uses). kfp's own switch for that, `_KFP_RUNTIME=true`, is on while the package
    itself imports; kfp.dsl, kfp.components and kfp.compiler then import in full, and
    `kfp.Client` imports when it is first asked for."""
    if "kfp" in sys.modules:
        return
    before = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp
    finally:
        if before is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = before

    def __getattr__(name: str) -> Any:  # a module's own __getattr__ (PEP 562)
        if name == "Client":
            return importlib.import_module("kfp.client").Client
        raise AttributeError(f"module 'kfp' has no attribute {name!r}")

    kfp.__dict__.setdefault("__getattr__", __getattr__)
    for name in ("kfp.dsl", "kfp.components", "kfp.compiler"):
        importlib.import_module(name)


def build_pipeline(sweep: SweepSpec) -> Any:
    """The KFP pipeline (a GraphComponent) for `sweep`."""
    import_kfp()
    from kfp import dsl

    from hydra_vertex_pipelines.components.collector_op import collector_op

    collect = collector_op(sweep.collector_image)

    @dsl.pipeline(name=sweep.name, description=sweep.description, pipeline_root=sweep.pipeline_root)
    def sweep_pipeline() -> None:
        tasks = []
        if sweep.fan_out == "parallel_for":
            items, constants = loop_items(sweep.trials)
            with dsl.ParallelFor(items=items, parallelism=sweep.parallelism or 0, name=TRIALS_GROUP) as item:
                fields = {}
                for key, value in items[0].items():
                    field = getattr(item, key)
                    field.channel_type = _CHANNEL_TYPES.get(type(value), "String")
                    fields[key] = field
                task = _job_op(sweep.trials)(**constants, **fields)
                task.set_display_name("trial")
                if sweep.trials[0].retry:  # the same for every trial of a loop (checked when planned)
                    task.set_retry(**sweep.trials[0].retry)
            tasks.append(task)
        else:
            for trial in sweep.trials:
                task = _job_op((trial,))(**trial.custom_job_inputs())
                task.set_display_name(trial.display_name)
                if trial.retry:
                    task.set_retry(**trial.retry)
                tasks.append(task)
        collector = collect(
            trials=[] if sweep.trials_file else trial_rows(sweep.trials),
            trials_path=gcs_to_fuse(sweep.trials_file) if sweep.trials_file else "",
            summary_path=sweep.summary_path,
            report_path=sweep.report_path,
            objective_key=sweep.objective_key,
            objective_direction=sweep.objective_direction,
            project=sweep.project,
            location=sweep.location,
            run_id=sweep.run_id,
            cost_rates=sweep.cost_rates,
            experiment=sweep.experiment,
        )
        collector.set_display_name(COLLECTOR_TASK_NAME)
        # Always re-run: a resumed sweep's summary must see the trials that ran again.
        collector.set_caching_options(False)
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


def spec_document(pipeline: Any) -> Tuple[Dict[str, Any], str]:
    """A compiled pipeline as kfp's compiler writes it, through libyaml when available,
    and the spec it holds.

    kfp dumps the spec with PyYAML's pure-Python emitter, which takes about 1 s per 1,000
    looped trials (benchmarks/README.md); the C emitter writes the same document in a
    fraction of that.
    """
    import yaml
    from google.protobuf import json_format
    from kfp.compiler import pipeline_spec_builder

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    _compact_loop_items(spec)
    documents = [spec]
    if len(pipeline.platform_spec.platforms) > 0:
        documents.append(json_format.MessageToDict(pipeline.platform_spec))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    comments = pipeline_spec_builder.extract_comments_from_pipeline_spec(spec, pipeline.description)
    # One line per long string: folding a 10,000-trial item list at 80 columns would
    # add an indent to every line of it.
    body = yaml.dump_all(documents, sort_keys=True, Dumper=dumper, width=2**31 - 1)
    return spec, comments + body


def _compact_loop_items(spec: Dict[str, Any]) -> None:
    """Re-encodes each loop's item list without the spaces kfp's json.dumps puts after
    every separator: the same JSON, about a tenth smaller for large sweeps."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            items = task.get("parameterIterator", {}).get("items", {})
            if "raw" in items:
                items["raw"] = json.dumps(json.loads(items["raw"]), sort_keys=True, separators=(",", ":"))


def compiled_pipeline(sweep: SweepSpec) -> Tuple[Dict[str, Any], str]:
    """The pipeline spec for `sweep`, and the pipeline.yaml text that holds it."""
    return spec_document(build_pipeline(sweep))


def compile_pipeline_spec(sweep: SweepSpec, path: Path) -> Dict[str, Any]:
    """Writes the pipeline.yaml for `sweep` at `path` (whole or not at all) and returns
    the spec it holds, so callers need not read the file back."""
    spec, document = compiled_pipeline(sweep)
    write_atomic(path, document)
    return spec
