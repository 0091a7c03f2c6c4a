"""The trials' records as they are now, read from the bucket at a bounded cost: one listing
(its pages) of the run's folder per read, then only the records that are new or changed
since the last read. The live report and `results` of a running sweep share it.

A record is read again only when its content changes (its listed CRC32C and MD5, else its
generation: a re-run trial writes a new one, while the same bytes uploaded again are not
read again); which record tells how this attempt of a trial ended is `record_problem`'s rule,
applied by the reader's caller with each trial's `not_before`.
"""

import posixpath
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from hydra_vertex_pipelines.components.sweep_files import GCS, TrialFiles
from hydra_vertex_pipelines.components.trial_result import parse_record

from ..cloud import gcs
from ..cloud.states import TaskDetailState

# What a listing returns of each trial folder: its record and its log, nothing the app wrote.
MATCH_GLOB = f"**/{TrialFiles.FOLDER}/{{{TrialFiles.RESULT},{TrialFiles.LOG}}}"


def not_before(attempt_started: Optional[float], task_named: bool, task_state: Optional[str]) -> Optional[float]:
    """When a trial's record must have been started to be this attempt's: in a resumed or
    recovered run (a new PipelineJob in the same folders, `attempt_started` its creation), a
    trial that runs again (not a cache hit) must leave a new record; an older one is an
    earlier attempt's. A trial in a loop (no task of its own) is not told apart."""
    if attempt_started is None or not task_named or task_state == TaskDetailState.SKIPPED:
        return None
    return attempt_started


def listing_roots(run_root: str, output_uris: Iterable[str]) -> List[str]:
    """The folders to list for the trials' records: the run's folder, and for trials that
    set a folder of their own elsewhere, the deepest folder holding all of them per bucket."""
    root = run_root.rstrip("/") + "/"
    outside: Dict[str, List[str]] = {}
    for uri in output_uris:
        if not uri.startswith(root):
            bucket, name = gcs.split_uri(uri)
            outside.setdefault(bucket, []).append(name.rstrip("/") + "/")
    roots = [run_root.rstrip("/")]
    for bucket, names in sorted(outside.items()):
        common = posixpath.commonpath(names) if len(names) > 1 else names[0].rstrip("/")
        roots.append(f"{GCS}{bucket}/{common}".rstrip("/"))
    return roots


@dataclass(frozen=True)
class Reading:
    """One read: the listing's pages and the records downloaded (the storage requests it made)."""

    pages: int
    downloads: int

    @property
    def requests(self) -> int:
        return self.pages + self.downloads


class RecordsSoFar:
    """Each trial's record (what `parse_record` gives) and whether it has a log, as of the
    last `read`; `output_uris` maps trial numbers to their folders (gs://)."""

    def __init__(self, storage: Any, run_root: str, output_uris: Mapping[int, str]) -> None:
        self.storage = storage
        self.roots = listing_roots(run_root, output_uris.values())
        self.by_result = {TrialFiles(uri).result: number for number, uri in output_uris.items()}
        self.by_log = {TrialFiles(uri).log: number for number, uri in output_uris.items()}
        self.records: Dict[int, Tuple[Any, Any]] = {}  # number -> (its version, record)
        self.logs: Set[int] = set()
        self.last = Reading(0, 0)

    def read(self) -> Dict[int, Any]:
        """Lists the folders once, downloads the records not read in this version yet;
        returns every listed trial's record."""
        pages = downloads = 0
        listed: Dict[int, Any] = {}
        logs: Set[int] = set()
        for root in self.roots:
            bucket, prefix = gcs.split_uri(root)
            blobs = self.storage.list_blobs(bucket, prefix=prefix.rstrip("/") + "/" if prefix else None, match_glob=MATCH_GLOB)
            for page in blobs.pages:
                pages += 1
                for blob in page:
                    uri = f"{GCS}{bucket}/{blob.name}"
                    if uri in self.by_result:
                        listed[self.by_result[uri]] = blob
                    elif uri in self.by_log:
                        logs.add(self.by_log[uri])
        for number, blob in listed.items():
            known = self.records.get(number)
            if known is None or known[0] != _version(blob):
                self.records[number] = (_version(blob), parse_record(_download(blob)))
                downloads += 1
        for number in set(self.records) - set(listed):  # removed since: no record now
            del self.records[number]
        self.logs = logs
        self.last = Reading(pages, downloads)
        return {number: record for number, (_, record) in self.records.items()}


def _version(blob: Any) -> Tuple[Any, ...]:
    """What tells a listed object's content from another's: its checksums when the listing
    gives them (the same bytes uploaded again are the same record), else its generation."""
    if blob.crc32c or blob.md5_hash:
        return (blob.crc32c, blob.md5_hash, blob.size)
    return (blob.generation,)


def _download(blob: Any) -> Optional[bytes]:
    """A listed object's bytes; None if it went away since the listing."""
    from google.api_core.exceptions import NotFound

    try:
        return bytes(blob.download_as_bytes())
    except NotFound:
        return None
