"""Trial results -> JobReturns, the same way in local and submit mode.

A trial is COMPLETED only when a result record of this run, for this trial, says so: a
record of another run (a re-run into the same folders, a resumed run's earlier attempt)
or of any other shape is that trial's failure, with the reason. A failed trial's error
names the trial, its overrides, the end of its log and where the whole log is.
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from hydra_vertex_pipelines.components.failures import RULES, Failure, Rule, Source, TrialEvidence, failure_of
from hydra_vertex_pipelines.components.trial_result import COMPLETED, record_problem
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec

from ._choices import FIELD
from ._context import LaunchContext
from ._errors import NoTrialValuesError, TrialFailed

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class Evidence(NamedTuple):
    """What is known of how a trial ended, besides its result record."""

    reason: str  # why there is no usable record, from the runner or Vertex ("" if unknown)
    log_path: Optional[str] = None  # where its whole log is: a file, or a Cloud Logging URL
    log_tail: str = ""  # the last lines of that log, when it is local
    job_error: Optional[Tuple[Optional[int], str]] = None  # its CustomJob's error: google.rpc code, message
    launcher_error: Optional[Tuple[Optional[int], str]] = None  # its launcher task's failure, when no job error
    task_state: Optional[str] = None  # how its task ended


Configs = Tuple[Optional[DictConfig], Optional[DictConfig]]  # a job's config and its Hydra config


class ComposedOnUse(JobReturn):
    """A JobReturn whose `cfg` and `hydra_cfg` are made on first use: composed as the
    basic launcher composes them (a trial that ran on Vertex left them in the bucket), or
    read from the files Hydra saved in a local trial's folder. Either costs tens of
    milliseconds of CPU a job, for values most sweepers never read; a local run would
    spend them while its next trials start.

    `named_by_config`: `task_name` is the Hydra config's `hydra.job.name` once that is
    read (the given name if it cannot be), as Hydra names the job it ran."""

    def __init__(self, compose: Callable[[], Configs], named_by_config: bool = False, **fields: Any) -> None:
        self._compose: Optional[Callable[[], Configs]] = compose
        self._configs: Configs = (None, None)
        self._named_by_config = named_by_config
        super().__init__(**fields)

    @property  # JobReturn's dataclass field, computed here
    def task_name(self) -> Optional[str]:
        hydra_cfg = self.hydra_cfg if self._named_by_config else None
        return str(hydra_cfg.hydra.job.name) if hydra_cfg is not None else self._task_name

    @task_name.setter
    def task_name(self, value: Optional[str]) -> None:
        self._task_name = value

    def _composed(self) -> Configs:
        if self._compose is not None:
            compose, self._compose = self._compose, None
            self._configs = compose()
        return self._configs

    @property  # JobReturn's dataclass field, computed here
    def cfg(self) -> Optional[DictConfig]:
        return self._composed()[0]

    @cfg.setter
    def cfg(self, value: Optional[DictConfig]) -> None:
        if value is not None:
            self._compose, self._configs = None, (value, self._configs[1])

    @property  # JobReturn's dataclass field, computed here
    def hydra_cfg(self) -> Optional[DictConfig]:
        return self._composed()[1]

    @hydra_cfg.setter
    def hydra_cfg(self, value: Optional[DictConfig]) -> None:
        if value is not None:
            self._compose, self._configs = None, (self._configs[0], value)


def saved_configs(hydra_dir: Path) -> Configs:
    """A local trial's config and Hydra config, as Hydra saved them in its folder."""

    def load(path: Path) -> Optional[DictConfig]:
        try:
            loaded = OmegaConf.load(path)
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, DictConfig) else None

    return load(hydra_dir / "config.yaml"), load(hydra_dir / "hydra.yaml")


def needs_job_error(record: Any, run_id: str, number: int, not_before: Optional[float] = None) -> bool:
    """Whether the trial's CustomJob error is worth its request: the trial failed, with no
    usable record or a record saying FAILED (a preemption outranks it: components/failures.py)."""
    problem = record_problem(record, run_id, number, not_before)
    return problem is not None or record.get("status") != COMPLETED


def trial_failure(
    trial: TrialSpec,
    record: Any,
    run_id: str,
    evidence: Evidence,
    not_before: Optional[float] = None,
    rules: Sequence[Rule] = RULES,
) -> Optional[Failure]:
    """Why the trial failed (see components/failures.py), by `rules`, or None when a record
    of this run's trial says it completed."""
    problem = record_problem(record, run_id, trial.number, not_before)
    status = None if problem is not None else record["status"]
    if status == COMPLETED:
        return None
    error = None if problem is not None else record.get("error")
    clues = TrialEvidence(status, error, evidence.job_error, evidence.launcher_error, evidence.task_state)
    return failure_of(clues, rules)


def _failure(trial: TrialSpec, headline: str, evidence: Evidence, failure: Optional[Failure]) -> TrialFailed:
    where = f"Trial {trial.number} ({' '.join(trial.overrides) or 'no overrides'})"
    kind = f" [{failure.kind}]" if failure is not None else ""
    lines = [f"{where} failed{kind}: {headline}"]
    # An error the app recorded itself was printed with its traceback as the trial ran (the
    # trial's lines reach the console): its log's tail would say it all again.
    recorded = failure is not None and failure.source is Source.RECORD
    if evidence.log_tail.strip() and not recorded:
        lines.append(f"Last lines of its log:\n{evidence.log_tail.rstrip()}")
    if evidence.log_path:
        lines.append(f"Its log: {evidence.log_path}")
    return TrialFailed("\n".join(lines))


def _error_headline(error: Optional[str]) -> str:
    """The last line of a traceback: the exception and its message."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "it raised, with no error text"


def job_return(
    trial: TrialSpec,
    record: Any,
    run_id: str,
    evidence: Evidence,
    *,
    cfg: Optional[DictConfig],
    hydra_cfg: Optional[DictConfig],
    working_dir: str,
    task_name: str,
    not_before: Optional[float] = None,
    compose: Optional[Callable[[], Configs]] = None,
    named_by_config: bool = False,
    rules: Sequence[Rule] = RULES,
) -> JobReturn:
    """The trial's JobReturn, with its value only from a record this run's trial wrote;
    its configs are `cfg` and `hydra_cfg`, or what `compose` gives when first read
    (`named_by_config`: and its `task_name` the name in that Hydra config)."""
    fields: Dict[str, Any] = dict(
        overrides=list(trial.overrides), cfg=cfg, hydra_cfg=hydra_cfg, working_dir=working_dir, task_name=task_name
    )
    ret = ComposedOnUse(compose, named_by_config, **fields) if compose is not None else JobReturn(**fields)
    problem = record_problem(record, run_id, trial.number, not_before)
    failure = trial_failure(trial, record, run_id, evidence, not_before, rules)
    if problem is not None:
        reason = f"{problem}: {evidence.reason}" if evidence.reason else str(problem)
        ret.status, ret._return_value = JobStatus.FAILED, _failure(trial, reason, evidence, failure)
    elif record["status"] == COMPLETED:
        ret.status, ret._return_value = JobStatus.COMPLETED, record.get("return_value")
        ret.working_dir = record.get("working_dir") or working_dir
    else:
        ret.status, ret._return_value = JobStatus.FAILED, _failure(trial, _error_headline(record.get("error")), evidence, failure)
        ret.working_dir = record.get("working_dir") or working_dir
    return ret


def returns_without_values(context: LaunchContext, trials: Sequence[TrialSpec], pipeline_path: Path, why: str) -> List[JobReturn]:
    """Nothing ran (or nothing is awaited): fine for the basic sweeper, an error for sweepers that need values."""
    if context.sweeper != BASIC_SWEEPER:
        raise NoTrialValuesError(
            f"{FIELD}.{why} produces no trial values, and the sweeper {context.sweeper} needs them "
            f"to choose its next trials. The first batch's pipeline is at {pipeline_path}. "
            f"To get values, use {FIELD}.mode=local, or {FIELD}.mode=submit with {FIELD}.wait=true."
        )
    return [
        JobReturn(
            overrides=list(t.overrides),
            working_dir=t.output_dir,
            task_name=context.app_name,
            status=JobStatus.COMPLETED,
            _return_value=None,
        )
        for t in trials
    ]
