"""A trial's result record (result.json): its fields, and when a record tells how a trial ended.

The trial writes it; the collector and the launcher read it, with the same rules. A record
tells how a trial ended only if it is a JSON object with status COMPLETED or FAILED and,
when the reader knows the run, it belongs to that run and that trial (a re-run into the
same folders, or a resumed run's earlier attempt, leaves a record that is not this one's).

Standard library only: trials and the collector's image use it.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Dict, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.clock import iso_utc
from hydra_vertex_pipelines.components.sweep_files import TrialFiles

COMPLETED = "COMPLETED"
FAILED = "FAILED"
ENDINGS = (COMPLETED, FAILED)


@dataclass(frozen=True)
class TrialResult:
    """How one trial of one run ended: its JSON value or its error, and when."""

    status: str  # COMPLETED or FAILED (UNKNOWN if Hydra gave the job no status)
    run_id: str
    number: int
    end_time: str
    working_dir: str
    return_value: Any = None
    return_value_is_repr: bool = False  # the value was not JSON: this is its repr
    error: Optional[str] = None  # the traceback's end
    error_type: Optional[str] = None
    start_time: Optional[str] = None
    duration_s: Optional[float] = None
    vertex_job_id: Optional[str] = None  # the CustomJob it ran in, for console links

    def to_json(self) -> Dict[str, Any]:
        """The record as result.json holds it; optional fields only when they are set."""
        record: Dict[str, Any] = {"status": self.status, "return_value": self.return_value, "error": self.error}
        if self.return_value_is_repr:
            record["return_value_is_repr"] = True
        if self.error_type is not None:
            record["error_type"] = self.error_type
        if self.start_time is not None:
            record["start_time"] = self.start_time
            record["duration_s"] = self.duration_s
        record.update(end_time=self.end_time, run_id=self.run_id, number=self.number, working_dir=self.working_dir)
        if self.vertex_job_id:
            record["vertex_job_id"] = self.vertex_job_id
        return record


class Flaw(Enum):
    """Why a record does not tell how this run's trial ended."""

    ABSENT = "absent"
    UNREADABLE = "unreadable"
    NOT_AN_OBJECT = "not_an_object"
    NO_ENDING = "no_ending"
    OTHER_RUN = "other_run"
    OTHER_TRIAL = "other_trial"
    EARLIER_ATTEMPT = "earlier_attempt"


@dataclass(frozen=True)
class RecordProblem:
    """A record that tells nothing of this trial, and what was found instead.

    `str()` says it as the launcher does, of the trial's folder; `at(path)` as the
    collector does, naming the file.
    """

    flaw: Flaw
    found: Any = None  # the reader's error, the JSON type, or the record's status, run, trial or start
    expected: Any = None  # this run's id, or when this attempt started (epoch seconds)

    def __str__(self) -> str:
        if self.flaw is Flaw.ABSENT:
            return f"it left no {TrialFiles.RECORD}"
        if self.flaw is Flaw.UNREADABLE:
            return f"{TrialFiles.RECORD} is not valid JSON"
        if self.flaw is Flaw.NOT_AN_OBJECT:
            return f"{TrialFiles.RECORD} holds a JSON {self.found}, not an object"
        if self.flaw is Flaw.NO_ENDING:
            return f"{TrialFiles.RECORD} has status {self.found!r}, not COMPLETED or FAILED"
        if self.flaw is Flaw.OTHER_RUN:
            return f"the {TrialFiles.RECORD} there belongs to run {self.found!r}, not to this run {self.expected}"
        if self.flaw is Flaw.OTHER_TRIAL:
            return f"the {TrialFiles.RECORD} there belongs to trial {self.found!r}"
        return (
            f"the {TrialFiles.RECORD} there is an earlier attempt's (started {self.found}, this run at {iso_utc(self.expected)})"
        )

    def at(self, path: str) -> str:
        if self.flaw is Flaw.ABSENT:
            return f"no {TrialFiles.RESULT} at {path}"
        if self.flaw is Flaw.UNREADABLE:
            return f"unreadable {path}: {self.found}"
        if self.flaw is Flaw.NOT_AN_OBJECT:
            return f"unreadable {path}: a JSON {self.found}, not an object"
        if self.flaw is Flaw.NO_ENDING:
            return f"the {TrialFiles.RESULT} at {path} has status {self.found!r}, not COMPLETED or FAILED"
        if self.flaw is Flaw.OTHER_RUN:
            return f"the {TrialFiles.RESULT} at {path} belongs to run {self.found!r}, not {self.expected}"
        if self.flaw is Flaw.OTHER_TRIAL:
            return f"the {TrialFiles.RESULT} at {path} belongs to trial {self.found!r}"
        return f"the {TrialFiles.RESULT} at {path} is an earlier attempt's (started {self.found}, this run at {iso_utc(self.expected)})"


def parse_record(data: Optional[bytes]) -> Any:
    """The JSON in a result file, non-finite numbers back as floats (see `strict_json`);
    None when there is no file, a RecordProblem when it is not JSON."""
    if data is None:
        return None
    try:
        return strict_json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return RecordProblem(Flaw.UNREADABLE, str(e))


def _started(record: Dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(record.get("start_time"))).timestamp()
    except ValueError:
        return float("-inf")


def record_problem(
    record: Any, run_id: Optional[str] = None, number: Optional[int] = None, not_before: Optional[float] = None
) -> Optional[RecordProblem]:
    """Why `record` (what `parse_record` gave) does not tell how trial `number` of run
    `run_id` ended, or None when it does; a reader that does not know the run passes
    neither, and any run's record is then this trial's.

    `not_before` (epoch seconds) is when this attempt of the trial was started, for runs
    that reuse an earlier run's folders (resume): an older record is an earlier attempt's.
    """
    if record is None:
        return RecordProblem(Flaw.ABSENT)
    if isinstance(record, RecordProblem):
        return record
    if not isinstance(record, dict):
        return RecordProblem(Flaw.NOT_AN_OBJECT, type(record).__name__)
    if record.get("status") not in ENDINGS:
        return RecordProblem(Flaw.NO_ENDING, record.get("status"))
    if run_id is not None and record.get("run_id") != run_id:
        return RecordProblem(Flaw.OTHER_RUN, record.get("run_id"), run_id)
    if number is not None and record.get("number") != number:
        return RecordProblem(Flaw.OTHER_TRIAL, record.get("number"))
    if not_before is not None and _started(record) < not_before:
        return RecordProblem(Flaw.EARLIER_ATTEMPT, record.get("start_time"), not_before)
    return None
