"""The names of a sweep's files and folders, for the launcher, the pipeline builder and
the code that runs inside the pipeline: `SweepFiles` for a sweep batch and its run,
`TrialFiles` for one trial's folder (as submitit's JobPaths names a job's files).

A folder is a local `Path` or a path string (a gs:// URI, a /gcs/ path, a local path),
and each name comes back in the folder's form, so one class serves the sweep dir on this
machine, the run's folder in the bucket and its FUSE twin.

Standard library only, and importing nothing else of this project: the collector image
and every trial read it.
"""

import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Generic, List, Optional, Tuple, TypeVar

GCS = "gs://"
FUSE = "/gcs/"  # where Vertex's Cloud Storage FUSE mount shows gs://BUCKET/...

Folder = TypeVar("Folder", str, Path)


def gcs_to_fuse(uri: str) -> str:
    """The path at which Vertex's Cloud Storage FUSE mount shows a gs:// URI."""
    if not uri.startswith(GCS):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    return FUSE + uri[len(GCS) :]


def fuse_to_gcs(path: str) -> str:
    """The gs:// URI of a /gcs/ path."""
    if not path.startswith(FUSE):
        raise ValueError(f"not a {FUSE} path: {path!r}")
    return GCS + path[len(FUSE) :]


def _batch_file(stem: str, tag: str, suffix: str) -> str:
    """A batch's file name: `summary.json` for the first batch, `summary-4.json` for the
    batch starting at job 4 (`tag` is "" or "-4")."""
    return f"{stem}{tag}{suffix}"


def _join(folder: Folder, *names: str) -> Folder:
    if isinstance(folder, str):
        return posixpath.join(folder, *names)
    return folder.joinpath(*names)


def _split(path: Folder) -> Tuple[Folder, str]:
    if isinstance(path, str):
        return posixpath.dirname(path), posixpath.basename(path)
    return path.parent, path.name


class SweepFiles(Generic[Folder]):
    """The files of one sweep batch in `folder`: the sweep dir, or the run's folder in the
    bucket (gs://PIPELINE_ROOT/RUN_ID), which local runs map onto the sweep dir.

    `tag` tells batches, and launches into the same sweep dir, apart: "" for the first
    batch, "-4" for the batch that starts at job 4, "-2" added by a second launch
    (pipeline.yaml, pipeline-4.yaml, pipeline-2.yaml, pipeline-4-2.yaml). Every file of a
    batch carries its pipeline file's tag, so no launch writes over another's.
    """

    PIPELINE = "pipeline"  # the compiled pipeline: pipeline.yaml, pipeline-4.yaml, ...
    MANIFEST = "manifest"  # what the batch is, written before anything leaves the machine
    SUMMARY = "summary"  # the collector's summary of the trials
    REPORT = "report"  # the collector's HTML report, beside the summary
    TRIALS = "trials"  # a large sweep's trial list, which the collector reads
    MANIFESTS = "manifest*.json"  # every batch's manifest in a sweep dir
    LOCK = ".vertex-local.lock"  # held by a local run: one local run per sweep dir at a time
    LOCAL_RUNS = ".vertex_local"  # local runs' working folders, one per run id
    LAUNCHER_BUCKETS = ".gcs"  # local mode: cloud paths outside the trial folders
    RUN_LOCAL_BUCKETS = "gcs"  # `run-local`: cloud paths, by default beside the pipeline file
    PACKAGES = "packages"  # wheels the trials install, one folder per content digest
    RECOVERY = "recovery"  # submit mode: each recovery attempt's pipeline, manifest and summary, in attempt-N/

    def __init__(self, folder: Folder, tag: str = "") -> None:
        self.folder: Folder = folder
        self.tag = tag

    @classmethod
    def of_batch(cls, folder: Folder, initial_job_idx: int) -> "SweepFiles[Folder]":
        """The files of the batch whose first job is `initial_job_idx`."""
        return cls(folder, "" if initial_job_idx == 0 else f"-{initial_job_idx}")

    @classmethod
    def of_pipeline(cls, pipeline: Folder) -> "Optional[SweepFiles[Folder]]":
        """The files that go with a pipeline file (pipeline-4.yaml: manifest-4.json, ...),
        in its folder; None for a file not named as a pipeline file."""
        folder, name = _split(pipeline)
        if not name.startswith(cls.PIPELINE):
            return None
        return cls(folder, PurePosixPath(name).stem[len(cls.PIPELINE) :])

    @classmethod
    def manifests_in(cls, target: Path) -> List[Path]:
        """The manifests `target` names: a folder's every batch (sorted by file name), or
        the one manifest it is."""
        return sorted(target.glob(cls.MANIFESTS)) if target.is_dir() else [target]

    def claimed(self, n: int) -> "SweepFiles[Folder]":
        """The files of the n-th launch of this batch into the same folder (1: these)."""
        return self if n == 1 else SweepFiles(self.folder, f"{self.tag}-{n}")

    def _named(self, stem: str, suffix: str) -> Folder:
        return _join(self.folder, _batch_file(stem, self.tag, suffix))

    @property
    def pipeline(self) -> Folder:
        return self._named(self.PIPELINE, ".yaml")

    @property
    def manifest(self) -> Folder:
        return self._named(self.MANIFEST, ".json")

    @property
    def summary(self) -> Folder:
        return self._named(self.SUMMARY, ".json")

    @property
    def report(self) -> Folder:
        return self._named(self.REPORT, ".html")

    @property
    def trials(self) -> Folder:
        return self._named(self.TRIALS, ".json")

    @property
    def lock(self) -> Folder:
        return _join(self.folder, self.LOCK)

    def local_run(self, run_id: str) -> Folder:
        """The local runner's working folder for run `run_id`: task logs, artifacts, its state."""
        return _join(self.folder, self.LOCAL_RUNS, run_id)

    @property
    def launcher_buckets(self) -> Folder:
        return _join(self.folder, self.LAUNCHER_BUCKETS)

    @property
    def run_local_buckets(self) -> Folder:
        return _join(self.folder, self.RUN_LOCAL_BUCKETS)

    def packages(self, digest: str = "") -> Folder:
        """The wheels built from sources with `digest` ("": all of them). The bucket keeps
        them in the same layout under the pipeline root, shared by every sweep."""
        return _join(self.folder, self.PACKAGES, digest) if digest else _join(self.folder, self.PACKAGES)

    @staticmethod
    def run_folder(pipeline_root: str, run_id: str) -> str:
        """The gs:// folder of one run: its summary, report, trial list and, unless a trial
        sets its own base_output_dir, its trial folders."""
        return f"{pipeline_root}/{run_id}"


class TrialFiles(Generic[Folder]):
    """The launcher's files in one trial's folder (the trial's Hydra run dir and its
    CustomJob's base_output_directory). They all live under one reserved folder, `.vertex/`,
    as Hydra keeps its own under `.hydra/`: every other name there is the app's, as with
    Hydra's basic launcher."""

    FOLDER = ".vertex"  # the launcher's folder in a trial's folder
    RESULT = "result.json"  # the trial's status, value and error, written by the trial
    LOG = "trial.log"  # the chief's output, kept by local runs
    JOB_PICKLE = "job.pkl"  # a pickled trial, for task functions no command reaches
    EARLIER_RUNS = "earlier-runs"  # what earlier runs left here, set aside by a local run
    RECORD = f"{FOLDER}/{RESULT}"  # the result file as named from the trial's folder, in messages

    def __init__(self, folder: Folder) -> None:
        self.folder: Folder = folder

    @property
    def launcher_folder(self) -> Folder:
        """The launcher's own folder in the trial's folder: nothing outside it is the launcher's."""
        return _join(self.folder, self.FOLDER)

    @property
    def result(self) -> Folder:
        return _join(self.folder, self.FOLDER, self.RESULT)

    @property
    def log(self) -> Folder:
        return _join(self.folder, self.FOLDER, self.LOG)

    @property
    def job_pickle(self) -> Folder:
        return _join(self.folder, self.FOLDER, self.JOB_PICKLE)

    def replica_log(self, pool: int, index: int) -> Folder:
        """One replica's log: .vertex/trial.log for the chief, .vertex/trial-workerpool1-0.log, ..."""
        name = self.LOG if (pool, index) == (0, 0) else f"trial-workerpool{pool}-{index}.log"
        return _join(self.folder, self.FOLDER, name)

    def earlier_run(self, run_id: str) -> Folder:
        """Where the result and logs of run `run_id` are set aside."""
        return _join(self.folder, self.FOLDER, self.EARLIER_RUNS, run_id.replace(os.sep, "_"))

    @classmethod
    def is_run_output(cls, name: str) -> bool:
        """Whether a file of the launcher's folder is one a run writes there: its result or a log."""
        return name == cls.RESULT or (name.startswith("trial") and name.endswith(".log"))
