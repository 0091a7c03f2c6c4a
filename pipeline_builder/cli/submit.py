"""`submit`: a compiled sweep's pipeline.yaml, byte for byte, as a PipelineJob with its
manifest's settings (flags fill or override them), without the app: the file reviewed is
the file run. Every check passes before anything is uploaded or sent."""

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from ..cloud import VertexTarget, gcs, vertex
from ..command_name import command_name
from ..errors import ConfigError
from ..spec import names
from ..spec.manifest import RESUBMISSION_KEYS, JobSettings, pipeline_digest, read_manifest

SUBMITTABLE = ("compile", "submit")  # a local run's manifest maps its files to this machine


@dataclass(frozen=True)
class Submission:
    """One compiled batch, checked and ready to send."""

    manifest_path: Path
    manifest: Dict[str, Any]  # as it will be recorded with the PipelineJob
    pipeline: Path
    target: VertexTarget
    settings: JobSettings
    job_id: str


def _fail(text: str) -> SystemExit:
    return SystemExit(f"error: {text}")


def compiled_manifests(target: Path) -> List[Path]:
    """The manifests `target` names: a sweep dir's every batch, or one manifest."""
    if not target.exists():
        raise _fail(f"{target} does not exist: expected a compiled sweep dir or one of its manifest*.json")
    found = SweepFiles.manifests_in(target)
    if not found:
        raise _fail(f"{target} holds no manifest.json: compile the sweep first (hydra.launcher.mode=compile)")
    return found


def _moved_with(path: Path, data: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest's local paths where the sweep dir is now: compiled in review on one
    machine, it may be submitted from a copy elsewhere. Its pipeline file is the one beside
    it; the files under the dir it was written in are under the dir it is in."""
    written_in = Path(data["pipeline_yaml"]).parent
    here = path.resolve().parent

    def moved(local: str) -> str:
        return str(here / Path(local).relative_to(written_in)) if Path(local).is_relative_to(written_in) else local

    files = {uri: moved(local) for uri, local in (data.get("files") or {}).items()}
    return {**data, "pipeline_yaml": moved(data["pipeline_yaml"]), "files": files}


def _checked_manifest(path: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """The manifest, if it can be submitted: written by compile (or submit) mode with what a
    PipelineJob needs, its pipeline file unchanged (unless --force), not submitted yet
    (unless --new-run)."""
    try:
        data = read_manifest(path)
    except (OSError, ValueError) as e:
        raise _fail(f"{path} cannot be read as a manifest ({type(e).__name__}: {e})") from None
    mode = data.get("mode") if isinstance(data, dict) else None
    if mode not in SUBMITTABLE:
        raise _fail(f"{path} is of a {mode} run: only a compiled (mode=compile) sweep is submitted")
    missing = [key for key in (*RESUBMISSION_KEYS, "pipeline_sha256") if key not in data]
    if missing:
        raise _fail(
            f"{path} lacks {', '.join(missing)}: it was written by an earlier version of this launcher; compile the sweep again"
        )
    where = data.get("vertex")
    if where and not args.new_run:
        raise _fail(
            f"{path} was submitted already, as {(where.get('jobs') or [where['resource_name']])[-1]}. "
            f"`{command_name()} status {shlex.quote(str(path.parent))}` follows it; --new-run submits the same file "
            "again as a new PipelineJob"
        )
    data = _moved_with(path, data)
    pipeline = Path(data["pipeline_yaml"])
    if not pipeline.is_file():
        raise _fail(f"{pipeline}, the pipeline file {path} was written with, is gone")
    if pipeline_digest(pipeline.read_bytes()) != data["pipeline_sha256"] and not args.force:
        raise _fail(
            f"{pipeline} was edited after it was compiled (its SHA-256 is not the one {path.name} recorded): "
            "what was reviewed is not what would run. Compile again, or pass --force to submit the edited file"
        )
    return data


def _target(data: Dict[str, Any], args: argparse.Namespace) -> VertexTarget:
    """Where the PipelineJob goes: the flags, else what the sweep recorded, else (the
    project) Application Default Credentials'. Every missing setting is said at once."""
    known = data.get("vertex") or data.get("target") or {}
    project = args.project or known.get("project") or vertex.default_project()
    location = args.location or known.get("location")
    target = VertexTarget(project or "", location or "", args.api_endpoint or known.get("api_endpoint"))
    gcs.use_recorded_emulator((data.get("vertex") or {}).get("storage_emulator_host"))
    problems = []
    if not project:
        problems.append(
            "no project: pass --project PROJECT (the sweep was compiled without hydra.launcher.project, "
            "and Application Default Credentials name none)"
        )
    if not location:
        problems.append("no location: pass --location REGION (a Vertex AI region such as us-central1)")
    if target.emulated and not gcs.emulator_host():
        problems.append(
            f"{target.api_endpoint} is an emulator: set {gcs.EMULATOR_HOST} to its Cloud Storage address "
            "(the emulator prints it as it starts), where the run's files go"
        )
    problem = vertex.credentials_problem(target)
    if problem:
        problems.append(problem.rstrip("."))
    if problems:
        raise _fail(". Also: ".join(problems) + ". Nothing was sent")
    return target


def _settings(data: Dict[str, Any], args: argparse.Namespace) -> JobSettings:
    """The recorded PipelineJob settings with the flags' overrides."""
    recorded = JobSettings.from_json(data["job_settings"])
    labels = names.check_labels({**recorded.labels, **dict(args.label)}, "--label")
    given = {
        "display_name": args.display_name,
        "service_account": args.service_account,
        "network": args.network,
        "experiment": args.experiment,
        "encryption_spec_key_name": args.encryption_spec_key_name,
        "enable_caching": False if args.no_cache else None,
    }
    if args.display_name is not None and not names.is_display_name(args.display_name):
        raise ConfigError("--display-name", args.display_name, f"at most {names.MAX_DISPLAY_NAME} characters, no control characters")
    return dataclasses.replace(recorded, labels=labels, **{k: v for k, v in given.items() if v is not None})


def _job_id(data: Dict[str, Any], new_run: bool) -> str:
    """The manifest's job id (the run id); with --new-run a new one, as a resume names its
    PipelineJob: the same run (trial folders, labels), another PipelineJob."""
    if not new_run:
        return str(data["job_id"])
    return f"{data['run_id']}-resume-{time.strftime('%Y%m%d-%H%M%S')}"


def plan(path: Path, args: argparse.Namespace) -> Submission:
    """One manifest, checked: nothing is uploaded or sent before every batch passes."""
    data = _checked_manifest(path, args)
    target = _target(data, args)
    settings = _settings(data, args)
    job_id = _job_id(data, args.new_run)
    earlier = data.get("earlier_jobs") or []
    if data.get("vertex"):  # --new-run: the earlier PipelineJobs stay listed
        earlier = [*earlier, *(data["vertex"].get("jobs") or [data["vertex"]["resource_name"]])]
    recorded = {**data, "mode": "submit", "job_settings": settings.to_json(), "job_id": job_id, "earlier_jobs": earlier}
    recorded.pop("vertex", None)
    return Submission(path, recorded, Path(data["pipeline_yaml"]), target, settings, job_id)


def _existing(target: VertexTarget, job_id: str) -> Optional[str]:
    """The PipelineJob `job_id` if Vertex has it already (submitted from a copy of the sweep
    dir, or by a submit whose manifest write was lost): Vertex would refuse the id."""
    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform

    name = f"projects/{target.project}/locations/{target.location}/pipelineJobs/{job_id}"
    try:
        return str(aiplatform.PipelineJob.get(name).resource_name)
    except NotFound:
        return None


def _quiet_sdk() -> None:
    """The SDK's own lines about the job name a console URL, which against the emulator does
    not exist: ours say where the job is. Its loggers set their level as they are imported."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("google.cloud.aiplatform"):
            logging.getLogger(name).setLevel(logging.WARNING)


def send(sub: Submission) -> Any:
    """Uploads what the run reads from its bucket (wheels only if absent), then creates the
    PipelineJob from the compiled file and records it in the manifest (`submit_job`)."""
    from ..recovery import submit_job, upload_run_files

    target = sub.target
    creds = vertex.credentials(target)
    vertex.init(target, creds)
    _quiet_sdk()
    found = _existing(target, sub.job_id)
    if found:
        raise _fail(f"Vertex AI has {found} already: this sweep was submitted before. --new-run submits it again")
    pipeline_root = str(sub.manifest["pipeline_root"])
    storage = gcs.client(target.project, None if target.emulated else creds)
    done = upload_run_files(storage, sub.manifest.get("files") or {}, pipeline_root, target.location)
    if done.run_files:
        print(f"Uploaded {done.run_files} files under {sub.manifest['run_root']}")
    for uri in done.wheels:
        print(f"Uploaded {uri} (the trials install it)")
    for uri in done.wheels_present:
        print(f"Already in the bucket, not uploaded again: {uri}")
    job = submit_job(
        target,
        sub.pipeline,
        sub.job_id,
        pipeline_root,
        sub.settings,
        sub.manifest_path,
        sub.manifest,
        on_retry=lambda e: print(f"Creating the PipelineJob failed ({type(e).__name__}: {e}); retrying", file=sys.stderr),
    )
    print(f"Submitted {job.resource_name}")
    print(f"View it: {vertex.console_url(job.resource_name, target.api_endpoint)}")
    return job


def follow(sub: Submission, poll_interval: float) -> int:
    """`--wait`: the one place a submitted batch is followed to its end (as `status --wait`
    follows it), then its results printed (as `results` prints them); 1 if it failed."""
    from .runs import results, status

    where = str(sub.manifest_path)
    worst = status(argparse.Namespace(target=where, api_endpoint=None, wait=True, poll_interval=poll_interval))
    results(argparse.Namespace(target=where, api_endpoint=None))
    return worst


def submit(args: argparse.Namespace) -> int:
    try:
        subs = [plan(path, args) for path in compiled_manifests(args.target)]
    except ConfigError as e:
        raise _fail(str(e)) from None
    for sub in subs:
        send(sub)
    if not args.wait:
        cmd, where = command_name(), shlex.quote(str(args.target))
        print(f"follow it: {cmd} status {where} --wait;  its results: {cmd} results {where}")
        return 0
    worst = 0
    try:
        for sub in subs:
            poll = args.poll_interval or (vertex.EMULATOR_POLL_INTERVAL if sub.target.emulated else vertex.DEFAULT_POLL_INTERVAL)
            worst = max(worst, follow(sub, poll))
    except KeyboardInterrupt:
        again = f"{command_name()} status {shlex.quote(str(args.target))} --wait"
        print(f"stopped following: the run goes on; `{again}` follows it again", file=sys.stderr)
        return 130
    return worst
