"""Cloud Storage reads and writes through google-cloud-storage (imported on first use).

The client honours STORAGE_EMULATOR_HOST, so the same calls reach a local GCS emulator.
"""

import os
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.sweep_files import GCS


def split_uri(uri: str) -> Tuple[str, str]:
    if not uri.startswith(GCS):
        raise ValueError(f"not a {GCS} URI: {uri!r}")
    bucket, _, name = uri[len(GCS) :].partition("/")
    return bucket, name


def client(project: Optional[str] = None, credentials: Any = None) -> Any:
    from google.cloud import storage

    if credentials is None and os.environ.get(EMULATOR_HOST):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return storage.Client(project=project, credentials=credentials)


EMULATOR_HOST = "STORAGE_EMULATOR_HOST"


def emulator_host() -> Optional[str]:
    """The Cloud Storage emulator this process talks to, if any: what a run submitted
    against the emulator records, so that a later command finds its bucket."""
    return os.environ.get(EMULATOR_HOST) or None


def use_recorded_emulator(host: Optional[str]) -> None:
    """Talks to the storage emulator a run was submitted with (its manifest recorded it),
    unless STORAGE_EMULATOR_HOST names one: a command run in a new terminal finds its bucket."""
    if host and not os.environ.get(EMULATOR_HOST):
        os.environ[EMULATOR_HOST] = host


def read_bytes(gcs: Any, uri: str) -> Optional[bytes]:
    """The object's bytes, or None if there is no such object."""
    from google.api_core.exceptions import NotFound

    bucket, name = split_uri(uri)
    try:
        return gcs.bucket(bucket).blob(name).download_as_bytes()
    except NotFound:
        return None


def read_json(gcs: Any, uri: str) -> Optional[Any]:
    data = read_bytes(gcs, uri)
    return None if data is None else strict_json.loads(data)


def write_bytes(gcs: Any, uri: str, data: bytes) -> None:
    bucket, name = split_uri(uri)
    gcs.bucket(bucket).blob(name).upload_from_string(data)


def upload_if_absent(gcs: Any, uri: str, local_path: str) -> bool:
    """Uploads a file unless its object exists (one metadata read); True if it did. For
    content-addressed objects (a wheel under its source digest): an existing one is this file."""
    from google.api_core.exceptions import PreconditionFailed

    bucket, name = split_uri(uri)
    blob = gcs.bucket(bucket).blob(name)
    if blob.exists():
        return False
    try:
        blob.upload_from_filename(str(local_path), if_generation_match=0)
    except PreconditionFailed:  # uploaded meanwhile by another launch
        return False
    return True


def ensure_bucket(gcs: Any, uri: str, location: Optional[str] = None) -> None:
    """Creates the URI's bucket if it is missing, as aiplatform does for a pipeline root."""
    from google.api_core.exceptions import Conflict

    bucket, _ = split_uri(uri)
    if gcs.lookup_bucket(bucket) is None:
        try:
            gcs.create_bucket(bucket, location=location)
        except Conflict:
            pass


def list_uris(gcs: Any, prefix_uri: str) -> Iterator[str]:
    bucket, prefix = split_uri(prefix_uri)
    for blob in gcs.list_blobs(bucket, prefix=prefix.rstrip("/") + "/" if prefix else None):
        yield f"{GCS}{bucket}/{blob.name}"


def download_tree(gcs: Any, prefix_uri: str, local_dir: str) -> int:
    """Copies every object under `prefix_uri` into `local_dir`, each file replaced whole
    (never truncated and refilled in place, where a reader could find it empty) and dated
    as its object was; returns how many."""
    from hydra_vertex_pipelines.components.atomic_write import write_atomic

    bucket, prefix = split_uri(prefix_uri.rstrip("/"))
    count = 0
    for blob in gcs.list_blobs(bucket, prefix=f"{prefix}/" if prefix else None):
        target = Path(local_dir, blob.name[len(prefix) + 1 :] if prefix else blob.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, blob.download_as_bytes())
        if blob.updated is not None:
            os.utime(target, (blob.updated.timestamp(), blob.updated.timestamp()))
        count += 1
    return count


def upload_tree(gcs: Any, local_dir: str, prefix_uri: str, newer_than: float = 0.0) -> int:
    """Copies files under `local_dir` changed after `newer_than` to `prefix_uri`; returns how
    many. A file gone by the time it is read (a writer's temporary file) is not copied."""
    count = 0
    root = Path(local_dir)
    if not root.is_dir():
        return 0
    bucket_name, prefix = split_uri(prefix_uri.rstrip("/"))
    bucket = gcs.bucket(bucket_name)
    for path in sorted(root.rglob("*")):
        name = f"{prefix}/{path.relative_to(root).as_posix()}" if prefix else path.relative_to(root).as_posix()
        try:
            if path.is_file() and path.stat().st_mtime >= newer_than:
                bucket.blob(name).upload_from_filename(str(path))
                count += 1
        except FileNotFoundError:  # replaced or removed since it was listed (a temporary file)
            continue
    return count
