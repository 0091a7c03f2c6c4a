"""Why a trial failed, in a closed set of kinds, from the evidence its run left.

The evidence, strongest first: the trial's own record (a record saying FAILED means the
app raised: `app`, unless its CustomJob's error says it was preempted), its CustomJob's `error` (a google.rpc code and message), the failure
of gcpc's launcher task that created and watched the CustomJob, and the task's state.
`RULES` is the one table that turns a code and a message into a kind: the first rule that
matches wins. Vertex documents few of its failure codes and messages; each rule says
where it comes from, and a rule added to `RULES` (before the ones it should win over)
applies everywhere a failure is classified.

Standard library only: the collector classifies the records it reads with it.
"""

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence, Tuple

# google.rpc.Code values met here (google/rpc/code.proto)
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
INTERNAL = 13
UNAVAILABLE = 14


class FailureKind(str, Enum):
    """Why a trial failed."""

    APP = "app"  # the app raised, or its process exited non-zero on its own
    PREEMPTED = "preempted"  # its Spot VM was taken back
    CAPACITY = "capacity"  # the region had no machines of its type (a stockout)
    QUOTA = "quota"  # a quota refused its CustomJob (429 RESOURCE_EXHAUSTED)
    FLEX_START_EXPIRED = "flex_start_expired"  # a Flex-start wait ran past max_wait_duration
    TIMEOUT = "timeout"  # it ran past its scheduling.timeout
    INTERNAL = "internal"  # Vertex failed, after its own restarts
    UNKNOWN = "unknown"  # the evidence says nothing of why

    def __str__(self) -> str:
        return self.value


class Source(str, Enum):
    """Where the evidence of a failure came from."""

    RECORD = "record"  # the trial's .vertex/result.json
    CUSTOM_JOB = "custom_job"  # its CustomJob's error
    LAUNCHER = "launcher"  # the failure of the task that created and watched the CustomJob
    TASK = "task"  # the task's state alone
    NONE = "none"  # nothing was left

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Rule:
    """A failure whose code is one of `codes` (any code if empty) and whose message matches
    `pattern` (a case-insensitive regular expression searched in it; "" matches any) is `kind`."""

    kind: FailureKind
    codes: Tuple[int, ...] = ()
    pattern: str = ""
    known_from: str = ""  # where the code or message is documented or reported

    def matches(self, code: Optional[int], message: str) -> bool:
        if self.codes and code not in self.codes:
            return False
        return not self.pattern or re.search(self.pattern, message, re.IGNORECASE) is not None


RULES: Tuple[Rule, ...] = (
    Rule(
        FailureKind.PREEMPTED,
        pattern=r"preempted|preemption",  # not "preemptible", which a path or a log line may say
        known_from="not documented for training CustomJobs: a message naming a preemption",
    ),
    Rule(
        FailureKind.QUOTA,
        pattern=r"quota metrics exceed quota limits|quota exceeded|exceeded quota",
        known_from="users' reports: 429 RESOURCE_EXHAUSTED \"The following quota metrics exceed quota limits: "
        'aiplatform.googleapis.com/custom_model_training_..." at CustomJob creation',
    ),
    Rule(
        FailureKind.CAPACITY,
        pattern=r"resources are insufficient|insufficient resources|stockout|resource_pool_exhausted",
        known_from='users\' reports: "Resources are insufficient in region" inside pipelines',
    ),
    Rule(
        FailureKind.FLEX_START_EXPIRED,
        pattern=r"max_wait_duration|maximum wait duration|flex[- ]?start",
        known_from="not documented: a message naming the Flex-start wait (scheduling.max_wait_duration)",
    ),
    Rule(
        FailureKind.QUOTA,
        codes=(RESOURCE_EXHAUSTED,),
        known_from="google.rpc RESOURCE_EXHAUSTED (HTTP 429) without a stockout message: a quota or rate limit",
    ),
    Rule(
        FailureKind.TIMEOUT,
        pattern=r"scheduling\.timeout|ran past its timeout",
        known_from="Vertex stops a CustomJob at job_spec.scheduling.timeout and fails it",
    ),
    Rule(FailureKind.TIMEOUT, codes=(DEADLINE_EXCEEDED,), known_from="google.rpc DEADLINE_EXCEEDED"),
    Rule(
        FailureKind.APP,
        codes=(INVALID_ARGUMENT,),
        pattern=r"exited with a non-zero status",
        known_from='Vertex\'s "The replica workerpool0-0 exited with a non-zero status of N" (code 3)',
    ),
    Rule(
        FailureKind.APP,
        pattern=r"Job failed with value error",
        known_from="gcpc's job_remote_runner: a ValueError for the codes in _JOB_USER_ERROR_CODES (3, 5, 6, 7, 9, 11, 12)",
    ),
    Rule(
        FailureKind.INTERNAL,
        codes=(INTERNAL, UNAVAILABLE),
        known_from="google.rpc INTERNAL and UNAVAILABLE: Vertex's own failure, after the restarts of "
        '"Understanding the custom training service" (5 per worker, then 3 of the whole job)',
    ),
)


def rule_from_json(data: Any) -> Rule:
    """A rule as the `failure_rules` setting gives it: `{kind, codes, pattern}` (codes and
    pattern optional, not both absent). ValueError says what is wrong."""
    if not isinstance(data, dict) or set(data) - {"kind", "codes", "pattern"}:
        raise ValueError("a mapping with kind, and codes (a list of google.rpc codes) and/or pattern (a regular expression)")
    kinds = ", ".join(k.value for k in FailureKind)
    try:
        kind = FailureKind(data.get("kind"))
    except ValueError:
        raise ValueError(f"kind {data.get('kind')!r} is not one of {kinds}") from None
    codes = data.get("codes") or []
    if not isinstance(codes, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise ValueError(f"codes {codes!r} is not a list of google.rpc codes (integers)")
    pattern = data.get("pattern") or ""
    try:
        re.compile(str(pattern))
    except re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a regular expression: {e}") from None
    if not codes and not pattern:
        raise ValueError("a rule needs codes or a pattern: without either it would match every failure")
    return Rule(kind, tuple(codes), str(pattern), "the failure_rules setting")


def rule_to_json(rule: Rule) -> Dict[str, Any]:
    return {"kind": rule.kind.value, "codes": list(rule.codes), "pattern": rule.pattern}


def rules_from_json(items: Sequence[Any]) -> Tuple[Rule, ...]:
    """The user's rules, then the built-in ones: the table a run classifies with."""
    return (*(rule_from_json(item) for item in items), *RULES)


def classify(code: Optional[int], message: str, rules: Sequence[Rule] = RULES) -> FailureKind:
    """The kind of the first rule that matches a failure's code and message, else UNKNOWN."""
    for rule in rules:
        if rule.matches(code, message or ""):
            return rule.kind
    return FailureKind.UNKNOWN


@dataclass(frozen=True)
class Failure:
    """A failure's kind and the evidence it was read from."""

    kind: FailureKind
    source: Source
    code: Optional[int] = None
    message: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"kind": self.kind.value, "code": self.code, "message": self.message, "source": self.source.value}

    @classmethod
    def from_json(cls, data: Any) -> Optional["Failure"]:
        """A failure as `to_json` wrote it; None for anything else."""
        if not isinstance(data, dict):
            return None
        try:
            kind, source = FailureKind(data.get("kind")), Source(data.get("source"))
        except ValueError:
            return None
        code = data.get("code")
        return cls(kind, source, code if isinstance(code, int) else None, str(data.get("message") or ""))


@dataclass(frozen=True)
class TrialEvidence:
    """What one attempt of a trial left: its record's status and error, its CustomJob's
    error, its launcher task's failure and its task's state (each None when absent)."""

    record_status: Optional[str] = None  # COMPLETED or FAILED, from a record of this run and trial
    record_error: Optional[str] = None
    job_error: Optional[Tuple[Optional[int], str]] = None  # the CustomJob's error: code, message
    launcher_error: Optional[Tuple[Optional[int], str]] = None  # the launcher task's failure: code, message
    task_state: Optional[str] = None


def headline(error: Optional[str]) -> str:
    """The last line of a traceback: the exception and its message."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# Kinds of a cloud error that outrank a record saying FAILED: a trainer that catches the
# SIGTERM of a preemption and raises leaves a FAILED record, yet it was stopped from outside.
OUTRANK_RECORD = frozenset({FailureKind.PREEMPTED})


def failure_of(evidence: TrialEvidence, rules: Sequence[Rule] = RULES) -> Failure:
    """The failure the evidence shows, strongest evidence first: the record (FAILED is
    `app`, unless the cloud's error is of a kind in OUTRANK_RECORD), the CustomJob's
    error, the launcher task's, the task's state."""
    cloud = _cloud_failure(evidence, rules)
    if evidence.record_status == "FAILED" and not _outranks_record(cloud, rules):
        return Failure(FailureKind.APP, Source.RECORD, None, headline(evidence.record_error))
    if cloud is not None:
        return cloud
    if evidence.task_state:
        return Failure(FailureKind.UNKNOWN, Source.TASK, None, f"its task ended {evidence.task_state}")
    return Failure(FailureKind.UNKNOWN, Source.NONE)


def _outranks_record(cloud: Optional[Failure], rules: Sequence[Rule]) -> bool:
    """Whether a cloud error is of a kind in OUTRANK_RECORD by its first line alone: what
    follows may be the trial's own log (the emulator's errors end with its last lines),
    whose words are the app's, not the cloud's."""
    if cloud is None:
        return False
    first_line = (cloud.message.splitlines() or [""])[0]
    return classify(cloud.code, first_line, rules) in OUTRANK_RECORD


def _cloud_failure(evidence: TrialEvidence, rules: Sequence[Rule]) -> Optional[Failure]:
    """The failure the CustomJob's error shows, else the launcher task's; None without either."""
    for source, error in ((Source.CUSTOM_JOB, evidence.job_error), (Source.LAUNCHER, evidence.launcher_error)):
        if error is not None and (error[0] or error[1]):
            code, message = error
            return Failure(classify(code, message, rules), source, code, message)
    return None


def attempts_of(failure: Optional[Failure], status: str) -> List[Dict[str, Any]]:
    """A summary row's `attempts`: each run of the trial, oldest first, with its status and
    failure (None when it completed). A run makes one attempt of each trial: this one."""
    return [{"attempt": 1, "status": status, "failure": None if failure is None else failure.to_json()}]


def with_failures(summary: Dict[str, Any], failures: Dict[int, Failure]) -> bool:
    """Sets the failure of the summary's failed rows (and of their last attempt) to what
    stronger evidence than the collector's showed; whether any row changed."""
    changed = False
    for row in summary.get("trials", []):
        failure = failures.get(int(row["number"]))
        if failure is None or row.get("status") == "COMPLETED" or row.get("failure") == failure.to_json():
            continue
        row["failure"] = failure.to_json()
        attempts = row.get("attempts") or attempts_of(failure, str(row.get("status")))
        attempts[-1]["failure"] = failure.to_json()
        row["attempts"] = attempts
        changed = True
    return changed
