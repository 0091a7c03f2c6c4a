"""The manifest: what a sweep batch is, written before anything leaves the machine.

It lists every trial (number, overrides, output paths, job id) so a run can be inspected,
re-attached or resumed from the sweep dir alone. It holds no credentials and no env values.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.sweep_files import SweepFiles

from .cloud_paths import PathMap
from .sweep import SweepSpec

FORMAT_VERSION = 1


def manifest_data(sweep: SweepSpec, pipeline_yaml: Path, **extra: Any) -> Dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "created": iso_utc(),
        "pipeline_name": sweep.name,
        "run_id": sweep.run_id,
        "pipeline_root": sweep.pipeline_root,
        "run_root": sweep.run_root,
        "summary_path": sweep.summary_path,
        "pipeline_yaml": str(pipeline_yaml),
        "trials_file": sweep.trials_file,
        "fan_out": sweep.fan_out,
        "parallelism": sweep.parallelism,
        **extra,
        "trials": [
            {
                "number": t.number,
                "job_id": t.job_id,
                "overrides": list(t.overrides),
                "display_name": t.display_name,
                "output_uri": t.output_uri,
                "output_dir": t.output_dir,
                "result_path": t.result_path,
            }
            for t in sweep.trials
        ],
    }


def manifest_text(data: Dict[str, Any]) -> str:
    """The manifest file's text."""
    return strict_json.dumps(data, indent=2, ensure_ascii=False)


def write_manifest(path: Path, data: Dict[str, Any]) -> Path:
    path = Path(path)
    write_atomic(path, manifest_text(data))
    return path


def read_manifest(path: Path) -> Dict[str, Any]:
    return strict_json.loads(Path(path).read_text(encoding="utf-8"))


def manifest_beside(pipeline_yaml: Path) -> Optional[Path]:
    """The manifest written with a pipeline.yaml, if it is there."""
    files = SweepFiles.of_pipeline(Path(pipeline_yaml))
    return files.manifest if files is not None and files.manifest.is_file() else None


def stage_files(manifest: Dict[str, Any], paths: PathMap) -> List[str]:
    """Puts the files a compiled run reads from its bucket (pickled jobs, a large sweep's
    trial list) where `paths` shows that bucket, for a run on this machine; returns their
    local paths. The trial list names trial folders, so those are mapped too."""
    staged = []
    for uri, source in (manifest.get("files") or {}).items():
        dest = Path(paths.local(uri))
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: the manifest lists it as {uri}, but it is gone")
        data = Path(source).read_bytes()
        if uri == manifest.get("trials_file"):
            data = json.dumps(paths.in_value(json.loads(data))).encode()
        if dest != Path(source):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        staged.append(str(dest))
    return staged
