"""What Vertex does around each task of an emulated run: the FUSE copies and the cache.

Before a task starts, what it reads is copied out of the Cloud Storage emulator into the
local view of the buckets (a trial's output folder, where pickled jobs live; package
wheels; files a container task names), and what a container task names that is no longer
in the bucket is removed from the view; after a task ends, what it wrote is copied back,
as Vertex's Cloud Storage FUSE mount would. A task whose cache key succeeded before is
SKIPPED and not run, as Vertex's execution cache does.
"""

import json
import os
import posixpath
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.sweep_files import FUSE, GCS, fuse_to_gcs

from ..local.handlers import TaskEnd
from ..local.plan import TaskKind, TaskRun, TaskState

# Cloud Storage's rule for bucket names: any other folder in the view is not a bucket.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class StorageSync:
    """The task hooks (local.handlers.TaskHooks) of an emulated run; `synced(task)` is
    called once what a task wrote is in Cloud Storage (or cannot be)."""

    def __init__(
        self, storage: Any, root: Path, cache: "Cache", custom_jobs: List[str], synced: Optional[Callable[[TaskRun], None]] = None
    ) -> None:
        self.storage = storage
        self.root = root
        self.cache = cache
        self.custom_jobs = custom_jobs
        self.synced = synced
        self._keys: Dict[str, Optional[str]] = {}  # task -> its cache key, from before() to after()

    def before(self, task: TaskRun, inputs: Mapping[str, Any], cache_key: Optional[str]) -> Optional[TaskEnd]:
        from ..cloud import gcs

        key = self._keys[task.name] = cache_key
        if key is not None and self.cache.hit(key):
            return TaskEnd(TaskState.CACHED)  # Vertex's execution cache: not run
        if task.kind == TaskKind.CUSTOM_JOB:
            self.custom_jobs.append(str(inputs.get("display_name", task.name)))
        base = inputs.get("base_output_directory")
        if task.kind == TaskKind.CUSTOM_JOB and base:
            bucket, name = gcs.split_uri(base)
            gcs.download_tree(self.storage, base, str(self.root / bucket / name))
        for pool in inputs.get("worker_pool_specs") or [] if task.kind == TaskKind.CUSTOM_JOB else []:
            for uri in (pool or {}).get("python_package_spec", {}).get("package_uris", []):
                local = self.root / uri[len(GCS) :]
                data = gcs.read_bytes(self.storage, uri)
                if data is not None and not local.exists():
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(data)
                    os.utime(local, (0, 0))  # a download, not a task output: not uploaded back
        named = fuse_paths([v for v in inputs.values() if not isinstance(v, str)])
        for value in inputs.values():  # files a container task names, e.g. a trial list
            if isinstance(value, str) and value.startswith(FUSE):
                data = gcs.read_bytes(self.storage, fuse_to_gcs(value))
                if data is not None:
                    named |= fuse_paths(_json_or_none(data))  # e.g. the result files a trial list names
                    # Paths inside the file name the FUSE mount, which is `root` here.
                    data = data.replace(f'"{FUSE}'.encode(), f'"{self.root}/'.encode())
                    local = self.root / value[len(FUSE) :]
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(data)
        if task.kind != TaskKind.CUSTOM_JOB:
            self._mirror(named)
        return None

    def _mirror(self, paths: Set[str]) -> None:
        """The files and folders at `paths` here as the bucket has them now, as the FUSE mount
        shows them: a file removed from the bucket is gone here too, and a named file only
        in the bucket is copied here (folders are not: they may hold large outputs)."""
        from ..cloud import gcs

        by_bucket: Dict[str, List[str]] = {}
        for path in paths:
            bucket, _, name = path[len(FUSE) :].rstrip("/").partition("/")
            if name:
                by_bucket.setdefault(bucket, []).append(name)
        for bucket, names in by_bucket.items():
            folder = os.path.commonpath([posixpath.dirname(n) for n in names])
            stored = {uri[len(f"{GCS}{bucket}/") :] for uri in gcs.list_uris(self.storage, f"{GCS}{bucket}/{folder}")}
            for name in names:
                local = self.root / bucket / name
                if local.is_dir():
                    for file in [f for f in local.rglob("*") if f.is_file()]:
                        if file.relative_to(self.root / bucket).as_posix() not in stored:
                            file.unlink()
                elif name not in stored:
                    local.unlink(missing_ok=True)
                elif not local.exists():
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(gcs.read_bytes(self.storage, f"{GCS}{bucket}/{name}") or b"")
                    os.utime(local, (0, 0))  # a download, not a task output: not uploaded back

    def after(self, task: TaskRun) -> None:
        try:
            self._upload(task)
        finally:
            if self.synced is not None:
                self.synced(task)

    def _upload(self, task: TaskRun) -> None:
        from ..cloud import gcs

        key = self._keys.get(task.name)
        if task.state == TaskState.SUCCEEDED and key is not None:
            self.cache.add(key)
        if task.start_time is None:  # it never ran (a cache hit): it wrote nothing to copy
            return
        started = task.start_time - 1
        for bucket_dir in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if bucket_dir.is_dir() and _BUCKET.match(bucket_dir.name):
                gcs.ensure_bucket(self.storage, f"{GCS}{bucket_dir.name}")
                gcs.upload_tree(self.storage, str(bucket_dir), f"{GCS}{bucket_dir.name}", newer_than=started)


def fuse_paths(value: Any) -> Set[str]:
    """Every /gcs/ path in a JSON-like value (lists, dicts, strings)."""
    if isinstance(value, str):
        return {value} if value.startswith(FUSE) else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return set().union(*(fuse_paths(v) for v in items))


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


class Cache:
    """Cache keys of tasks that succeeded, kept in the data dir across emulator restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.keys = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()

    def hit(self, key: str) -> bool:
        with self.lock:
            return key in self.keys

    def add(self, key: str) -> None:
        with self.lock:
            self.keys.add(key)
            write_atomic(self.path, strict_json.dumps(sorted(self.keys)))
