"""Cloud failures the emulator injects on request, the way Vertex fails, reproducibly.

A fault plan (`hydra-vertex-pipelines emulator --faults FILE`, `--fault KIND,key=value,...`)
lists rules; each CreateCustomJob meets the first rule that matches its display name,
the attempt number of that display name (its 1st, 2nd... CreateCustomJob since the
emulator started), its scheduling strategy and its chief's machine type and accelerator
type, and whose `rate` draw hits. The draw is
seeded by the plan's seed, the rule's place, the display name and the attempt, so the
same seed gives the same faults whatever order parallel tasks create their jobs in.

What Vertex documents, and what it does not (the table below holds every code and message;
extend it there):
- Quota at creation: `429 RESOURCE_EXHAUSTED`, "The following quota metrics exceed quota
  limits: aiplatform.googleapis.com/custom_model_training_..." (as users report it); gcpc's
  launcher (`job_remote_runner.create_job`) does not retry it, so the task fails.
- Job submissions: 60 per minute per region by default (Vertex's quotas page); the message
  of that 429 is not documented: it is modelled on Google's usual "Quota exceeded for quota
  metric ..." text.
- Stockouts: "Resources are insufficient in region: REGION" (as users report it); the job
  fails without running.
- Spot preemption: Compute Engine gives a preempted VM a 30 s notice (ACPI soft-off); how a
  training container sees it, and the state and error a preempted CustomJob ends with, are
  not documented. A container stop is SIGTERM, then SIGKILL after a grace: rehearsed so, and
  the job ends FAILED with code 10 (ABORTED), a choice of this emulator.
- Flex-start: a job waits for resources up to `scheduling.max_wait_duration`; the error of
  a wait that expires is not documented (code 8 here, a choice of this emulator).
- Internal errors: code 13 (INTERNAL) with Vertex's usual "Internal error occurred" text.
gcpc's launcher raises ValueError for a failed job whose code is in `_JOB_USER_ERROR_CODES`
(3, 5, 6, 7, 9, 11, 12) and RuntimeError otherwise: none of these codes is a user error.
"""

import random
import re
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Deque, Dict, Mapping, Optional, Tuple

PREEMPTION_GRACE_S = 30.0  # Compute Engine's preemption notice
PREEMPT_AFTER_S = 10.0  # a preemption's default delay after the job starts running


class FaultKind(str, Enum):
    PREEMPT = "preempt"
    QUOTA = "quota"
    CAPACITY = "capacity"
    FLEX_START_EXPIRED = "flex_start_expired"
    INTERNAL = "internal"


JOB_CREATION_QUOTA = "job_creation_quota"  # the table's entry for the creation rate quota


@dataclass(frozen=True)
class FaultError:
    """A google.rpc.Status: `code`, its name `status`, and a message whose {fields} are the
    job's (region, replica, metric, max_wait). `http` > 0: CreateCustomJob is refused with
    that HTTP status; 0: the job is created and ends FAILED with this error."""

    code: int
    status: str
    message: str
    http: int = 0


# THE table of every injected failure: extend or change it here.
FAULT_ERRORS: Dict[str, FaultError] = {
    FaultKind.PREEMPT.value: FaultError(
        10, "ABORTED", "The replica {replica} was preempted: its Spot VM was reclaimed by Compute Engine."
    ),
    FaultKind.QUOTA.value: FaultError(
        8, "RESOURCE_EXHAUSTED", "The following quota metrics exceed quota limits: aiplatform.googleapis.com/{metric}", 429
    ),
    FaultKind.CAPACITY.value: FaultError(
        8, "RESOURCE_EXHAUSTED", "Resources are insufficient in region: {region}. Please try a different region."
    ),
    FaultKind.FLEX_START_EXPIRED.value: FaultError(
        8, "RESOURCE_EXHAUSTED", "The Flex-start job could not get its resources within its max_wait_duration of {max_wait}."
    ),
    FaultKind.INTERNAL.value: FaultError(
        13,
        "INTERNAL",
        "Internal error occurred. Please retry in a few minutes. If you still experience errors, contact Vertex AI.",
    ),
    JOB_CREATION_QUOTA: FaultError(
        8,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Custom job submissions' and limit 'Custom job submissions per minute per region'"
        " of service 'aiplatform.googleapis.com' (limit {limit}).",
        429,
    ),
}

# Vertex preempts only Spot VMs, and only a Flex-start job waits for resources.
_ONLY_FOR = {FaultKind.PREEMPT: "SPOT", FaultKind.FLEX_START_EXPIRED: "FLEX_START"}
RULE_FIELDS = ("kind", "rate", "display_name", "attempt", "after", "machine_type", "accelerator_type")
PLAN_FIELDS = ("seed", "preemption_grace", "job_creation_quota", "faults")
QUOTA_TEXT = re.compile(r"^\s*(\d+)\s*(?:per|/)\s*minute\s*$")


class FaultSpecError(ValueError):
    """A fault specification that cannot be used; the message names the field and value."""


@dataclass(frozen=True)
class FaultRule:
    kind: FaultKind
    rate: float = 1.0  # probability per matching job
    display_name: Optional[str] = None  # a regular expression searched in the display name
    attempts: Tuple[int, ...] = ()  # which CreateCustomJob of that display name (1: the first); () every one
    after: float = PREEMPT_AFTER_S  # preempt: seconds after the job starts running
    machine_type: Optional[str] = None  # the chief's machineSpec.machineType, exactly; None: any
    accelerator_type: Optional[str] = None  # the chief's machineSpec.acceleratorType, exactly; None: any

    def matches(self, display_name: str, attempt: int, strategy: str, machine: Optional[Mapping[str, Any]] = None) -> bool:
        machine = machine or {}
        return (
            (self.display_name is None or re.search(self.display_name, display_name) is not None)
            and (not self.attempts or attempt in self.attempts)
            and _ONLY_FOR.get(self.kind, strategy) == strategy
            and self.machine_type in (None, machine.get("machineType"))
            and self.accelerator_type in (None, machine.get("acceleratorType"))
        )


@dataclass(frozen=True)
class FaultPlan:
    rules: Tuple[FaultRule, ...] = ()
    seed: int = 0
    preemption_grace: float = PREEMPTION_GRACE_S
    job_creation_quota: Optional[int] = None  # CreateCustomJob calls accepted per minute

    def describe(self) -> str:
        quota = f", {self.job_creation_quota} job creations per minute" if self.job_creation_quota else ""
        kinds = ", ".join(r.kind.value for r in self.rules) or "none"
        return f"Faults: {kinds} (seed {self.seed}, preemption grace {self.preemption_grace:g} s{quota})"


@dataclass
class Fault:
    """The fault a created job meets: its rule and the error it ends with."""

    rule: FaultRule
    error: Dict[str, Any] = field(default_factory=dict)


class Faults:
    """A plan at work: counts attempts per display name and job creations per minute."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._attempts: Counter = Counter()
        self._created: Deque[float] = deque()
        self._lock = threading.Lock()

    def on_create(self, job: Mapping[str, Any], region: str) -> Tuple[Optional[Tuple[int, str, str]], Optional[Fault]]:
        """For a valid CreateCustomJob body (camelCase JSON): a refusal (HTTP code, status,
        message) or None, and the fault the created job meets or None."""
        name = str(job.get("displayName", ""))
        scheduling = job.get("jobSpec", {}).get("scheduling", {})
        pools = job.get("jobSpec", {}).get("workerPoolSpecs", [{}])
        machine = (pools[0] if pools else {}).get("machineSpec", {})
        with self._lock:
            self._attempts[name] += 1
            attempt = self._attempts[name]
            rule = next(
                (
                    r
                    for i, r in enumerate(self.plan.rules)
                    if r.matches(name, attempt, scheduling.get("strategy", ""), machine) and self._hit(i, name, attempt, r)
                ),
                None,
            )
            if rule is None or rule.kind != FaultKind.QUOTA:
                refused = self._over_quota()
                if refused is not None:
                    return refused, None
        if rule is None:
            return None, None
        values = {
            "region": region,
            "replica": "workerpool0-0",
            "metric": _metric(machine),
            "max_wait": scheduling.get("maxWaitDuration", "86400s"),
        }
        error = FAULT_ERRORS[rule.kind.value]
        message = error.message.format(**values)
        if error.http:
            return (error.http, error.status, message), None
        return None, Fault(rule, {"code": error.code, "message": message})

    def _hit(self, index: int, name: str, attempt: int, rule: FaultRule) -> bool:
        return rule.rate >= 1 or random.Random(f"{self.plan.seed}/{index}/{name}/{attempt}").random() < rule.rate

    def _over_quota(self) -> Optional[Tuple[int, str, str]]:
        """The creation rate quota's 429, or None (and this creation counted)."""
        limit = self.plan.job_creation_quota
        if not limit:
            return None
        now = time.monotonic()
        while self._created and now - self._created[0] >= 60.0:
            self._created.popleft()
        if len(self._created) >= limit:
            error = FAULT_ERRORS[JOB_CREATION_QUOTA]
            return error.http, error.status, error.message.format(limit=limit)
        self._created.append(now)
        return None


def _metric(machine: Mapping[str, Any]) -> str:
    """The training quota metric a job's chief needs: its accelerators', else CPUs."""
    accelerator = str(machine.get("acceleratorType", "") or "")
    if accelerator and accelerator != "ACCELERATOR_TYPE_UNSPECIFIED":
        return "custom_model_training_" + accelerator.lower().replace("nvidia_tesla_", "nvidia_") + "_gpus"
    return "custom_model_training_cpus"


class Preemption:
    """Preempts a running job's replicas `after` seconds from `start()`, unless they end
    first: SIGTERM to each replica's session, then SIGKILL (the supervisor's hurry) if they
    have not ended within `grace` seconds."""

    def __init__(self, supervisor: Any, after: float, grace: float) -> None:
        self.supervisor = supervisor
        self.after = after
        self.grace = grace
        self.ended = threading.Event()  # set when the replicas have ended
        self.fired = False

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        from ..local.sessions import signal_session

        if self.ended.wait(self.after):
            return
        # The replicas' processes, each leading its session, signalled here rather than
        # through the supervisor's stop, whose grace is fixed.
        pids = self.supervisor.running_pids()
        if not pids:
            return
        self.fired = True
        for pid in pids:
            signal_session(pid, signal.SIGTERM)
        if not self.ended.wait(self.grace):
            self.supervisor.hurry()
