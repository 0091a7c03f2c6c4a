"""A planned batch -> its files in the sweep dir, before anything runs or is sent.

This launch owns its files: its pipeline.yaml and manifest are created exclusively, so a
second launch into the same sweep dir gets pipeline-2.yaml (and manifest-2.json,
summary-2.json) rather than overwriting the first one's. They appear together or not at
all: a full disk leaves none of them, and says which file did not fit.
"""

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from hydra.core.utils import filter_overrides

from hydra_vertex_pipelines.components.atomic_write import FileSet, WriteFailed
from hydra_vertex_pipelines.components.failures import RULES, rule_to_json
from hydra_vertex_pipelines.components.sweep_files import SweepFiles
from hydra_vertex_pipelines.pipeline_builder.spec.manifest import JobSettings, claim_files, compiled_target, pipeline_digest

from ._choices import Mode
from ._errors import LauncherWriteError
from ._planning import Batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """The batch as written, and what its files hold."""

    batch: Batch  # its summary named after its pipeline file
    pipeline_path: Path
    manifest_path: Path
    spec: Dict[str, Any]  # the compiled pipeline
    manifest: Dict[str, Any]  # the manifest's data, as written
    task_names: Dict[int, str]  # trial number -> its pipeline task (trials in a loop have none)
    from_cache: bool = False  # pipeline.yaml came from the compile cache (local mode)


def announce(batch: Batch) -> None:
    """Logs the pipeline, its run and each trial's overrides, as Hydra's launchers do."""
    trials = batch.sweep.trials
    log.info(f"Vertex pipeline {batch.sweep.name}: {len(trials)} trials, run {batch.sweep.run_id}")
    for t in trials:
        log.info(f"\t#{t.number} : {' '.join(filter_overrides(t.overrides))}")


def _local_files(batch: Batch, out: FileSet) -> Dict[str, str]:
    """Stages the files the run reads from its bucket into the sweep dir (and, for a local
    run, where it reads them); returns each one's gs:// URI -> local path."""
    paths = batch.local_paths()
    files = {}
    for uri, data in batch.uploads(paths if batch.mode is Mode.LOCAL else None).items():
        local = Path(paths.local(uri))
        out.write(local, data)
        files[uri] = str(local)
    for package in batch.packages:
        files[package.uri] = str(package.local_path)
        if batch.mode is Mode.LOCAL:  # where the local run's trials find it
            out.copy(package.local_path, paths.local(package.uri))
    return files


def job_settings(batch: Batch) -> JobSettings:
    """How every PipelineJob of this batch's sweep is created (in compile mode: as far as
    the launch knows, for `hydra-vertex-pipelines submit`)."""
    settings = batch.submit or batch.compiled_for
    assert settings is not None  # submit and compile modes
    return JobSettings(
        display_name=settings.display_name,
        labels=dict(batch.pipeline_labels),
        enable_caching=settings.enable_caching,
        failure_policy=settings.failure_policy.value,
        service_account=settings.service_account,
        network=settings.network,
        reserved_ip_ranges=tuple(settings.reserved_ip_ranges),
        experiment=settings.experiment,
        encryption_spec_key_name=settings.encryption_spec_key_name,
    )


def resubmission(batch: Batch) -> Dict[str, Any]:
    """What a new PipelineJob of the batch's sweep needs without the app: `recover` of a
    submitted batch (README, "Recovery"), `submit` of a compiled one, which also starts
    from the target the launch knew (its flags fill or override it); nothing in local mode."""
    settings = batch.submit or batch.compiled_for
    if settings is None:
        return {}
    compiled = {} if batch.compiled_for is None else {"target": compiled_target(settings.target)}
    return {
        "sweep": batch.sweep.to_dict(),
        "job_settings": job_settings(batch).to_json(),
        "job_id": batch.job_id or batch.sweep.run_id,
        "recovery": settings.recovery.to_json(),
        **compiled,
    }


def _stage_batch(batch: Batch, claimed: SweepFiles[Path], out: FileSet) -> Written:
    from hydra_vertex_pipelines.pipeline_builder.compile_cache import cache_folder, compile_with_cache
    from hydra_vertex_pipelines.pipeline_builder.pipeline import trial_task_names
    from hydra_vertex_pipelines.pipeline_builder.spec.manifest import manifest_data, manifest_text

    pipeline_path, manifest_path = claimed.pipeline, claimed.manifest
    # The summary and report follow the pipeline file's name: a second launch into this
    # sweep dir writes summary-2.json rather than over the first one's.
    batch = dataclasses.replace(batch, sweep=dataclasses.replace(batch.sweep, tag=claimed.tag))
    # Local mode's debug loop runs the same sweep again and again: its compiled file is kept.
    spec, document, from_cache = compile_with_cache(batch.sweep, cache_folder() if batch.mode is Mode.LOCAL else None)
    out.write(pipeline_path, document)  # as UTF-8: the bytes pipeline_digest covers
    files = _local_files(batch, out)
    own_rules = [rule_to_json(r) for r in batch.failure_rules[: len(batch.failure_rules) - len(RULES)]]
    data = manifest_data(
        batch.sweep,
        pipeline_path,
        mode=batch.mode.value,
        initial_job_idx=batch.initial_job_idx,
        files=files,
        failure_rules=own_rules,
        pipeline_sha256=pipeline_digest(document.encode("utf-8")),
        **resubmission(batch),
    )
    by_folder = trial_task_names(spec)
    for trial in data["trials"]:
        trial["task_name"] = by_folder.get(trial["output_uri"])
    out.write(manifest_path, manifest_text(data))
    task_names = {trial.number: by_folder[trial.output_uri] for trial in batch.sweep.trials if by_folder.get(trial.output_uri)}
    return Written(batch, pipeline_path, manifest_path, spec, data, task_names, from_cache)


def write_batch(batch: Batch) -> Written:
    """Compiles pipeline.yaml, writes the manifest beside it and the files the run reads:
    all of them, or (when a write fails: a full disk, a quota) none, and a one-line error
    naming the file."""
    try:
        with FileSet() as out:
            batch.sweep_dir.mkdir(parents=True, exist_ok=True)
            claimed = claim_files(SweepFiles(batch.sweep_dir, batch.tag))
            out.own(claimed.pipeline)
            written = _stage_batch(batch, claimed, out)
    except WriteFailed as e:
        raise LauncherWriteError(
            f"Could not write {e.path}: {e.reason()}. Nothing of this batch was left in {batch.sweep_dir}."
        ) from None
    except OSError as e:
        raise LauncherWriteError(f"Could not write the batch's files in {batch.sweep_dir}: {e}") from None
    log.info(f"Wrote {written.pipeline_path}")
    log.info(f"Wrote {written.manifest_path}")
    return written
