"""The names of a sweep's files and cloud paths, shared by the launcher, the pipeline
builder and the code that runs inside the pipeline.

Standard library only, and importing nothing else of this project: the collector image
and every trial read it.
"""

GCS = "gs://"
FUSE = "/gcs/"  # where Vertex's Cloud Storage FUSE mount shows gs://BUCKET/...

RESULT_FILE = "result.json"  # a trial's status, value and error, written by the trial
LOG_FILE = "trial.log"  # a trial's output, kept by the local runner
JOB_PICKLE = "job.pkl"  # a pickled trial, for task functions no command reaches
SUMMARY_STEM = "summary"  # the collector's summary: summary.json, summary-4.json, ...
REPORT_STEM = "report"  # the collector's HTML report beside it
TRIALS_STEM = "trials"  # a large sweep's trial list for the collector


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


def batch_file(stem: str, tag: str, suffix: str) -> str:
    """A batch's file name: `summary.json` for the first batch, `summary-4.json` for the
    batch starting at job 4 (`tag` is "" or "-4")."""
    return f"{stem}{tag}{suffix}"
