"""The sweep's trials as Vertex AI Experiments runs: one run per trial, to sort and compare.

The collector calls `log_trials` when `hydra.launcher.experiment` is set, after it has
written the summary. Each trial becomes the run `<run id>-t<number>` of the experiment,
its overrides the run's parameters, its numeric results the run's metrics and its status
the run's state, through aiplatform's public API (`init`, `start_run`, `log_params`,
`log_metrics`, `end_run`). The names are the same for a resumed run of the sweep, which
updates its runs rather than failing on runs that exist. aiplatform is imported only here,
and only when runs are logged: the collector of a sweep without an experiment never needs it.
"""

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Sequence, Union

from hydra_vertex_pipelines.components.collector import numeric_setting, objective_value, parse_overrides

# aiplatform keeps a run's TensorBoard link as the artifact `<experiment>-<run>-tb-run`,
# an id of at most 128 characters: its ExperimentRun refuses longer `<experiment>-<run>`.
MAX_RUN_ID = 128 - len("-tb-run")
_DIGEST = 8  # hex digits of a cut run id's hash
COMPLETED = "COMPLETED"  # the trial status (trial_result) whose run state is COMPLETE

Param = Union[str, int, float]


@dataclass(frozen=True)
class ExperimentTarget:
    """Which experiment the runs go to, and how the collector reaches Vertex AI
    (`api_endpoint` "" for Vertex itself; plain http for an emulator: no credentials)."""

    name: str
    project: str = ""  # "": the project of the collector's own credentials
    location: str = ""  # "": aiplatform's default region
    api_endpoint: str = ""

    def to_json(self) -> str:
        """The collector's `experiment` input."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentTarget":
        return cls(**json.loads(text))


def run_name(run_id: str, number: int, experiment: str) -> str:
    """A trial's run: `<run id>-t<number>`, the same each time the sweep's trials are
    collected. Vertex run names are lower-case letters, digits and '-' (run ids already
    are), and `<experiment>-<name>` is at most MAX_RUN_ID characters: a longer run id is
    cut and given a hash of itself, so two run ids never share a name."""
    suffix = f"-t{int(number)}"
    room = MAX_RUN_ID - len(experiment) - 1 - len(suffix)
    if len(run_id) <= room:
        return run_id + suffix
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:_DIGEST]
    keep = room - len(digest) - 1
    if keep < 1:
        raise ValueError(f"experiment name {experiment!r} leaves no room for run names ({MAX_RUN_ID} characters in all)")
    return f"{run_id[:keep].rstrip('-')}-{digest}{suffix}"


def longest_experiment(last_number: int) -> int:
    """The longest experiment name whose runs all have names, up to trial `last_number`:
    a name cut to one character of the run id, its hash and `-t<number>` still fits."""
    return MAX_RUN_ID - 1 - (1 + 1 + _DIGEST) - len(f"-t{int(last_number)}")


def params_of(overrides: Sequence[str]) -> Dict[str, Param]:
    """A trial's overrides as run parameters: `model.lr=0.1` is `{"model.lr": 0.1}`;
    a number is a number (sortable in the console), anything else its text."""
    params: Dict[str, Param] = {}
    for key, text in parse_overrides(overrides).items():
        number = numeric_setting(text)
        if number is None:
            params[key] = text
        elif number.is_integer() and text.lstrip("+-").isdigit():
            params[key] = int(text)
        else:
            params[key] = number
    return params


def metrics_of(return_value: Any) -> Dict[str, float]:
    """A trial's numeric results as run metrics: a number is `value`; a dict's finite
    numbers by their keys, nested keys joined with '.' (`{"val": {"loss": 1}}` is `val.loss`)."""
    number = objective_value(return_value, "")
    return {"value": number} if number is not None else _flat(return_value, "")


def _flat(value: Any, prefix: str) -> Dict[str, float]:
    number = objective_value(value, "")  # a finite number, as the collector ranks trials by
    if number is not None:
        return {prefix: number}
    if not isinstance(value, dict):
        return {}
    out: Dict[str, float] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


@dataclass(frozen=True)
class TrialRun:
    """What one trial's experiment run holds."""

    name: str
    params: Dict[str, Param]
    metrics: Dict[str, float]
    completed: bool  # state COMPLETE, else FAILED


def trial_runs(rows: Sequence[Mapping[str, Any]], run_id: str, experiment: str) -> List[TrialRun]:
    """The runs for the summary's trial rows: a trial that did not complete is FAILED,
    with no metrics."""
    runs = []
    for row in rows:
        completed = row.get("status") == COMPLETED
        runs.append(
            TrialRun(
                name=run_name(run_id, int(row["number"]), experiment),
                params=params_of(row.get("overrides") or []),
                metrics=metrics_of(row.get("return_value")) if completed else {},
                completed=completed,
            )
        )
    return runs


def log_trials(rows: Sequence[Mapping[str, Any]], run_id: str, target: ExperimentTarget) -> Dict[str, Any]:
    """Logs every trial as a run of the experiment; returns what the summary says of it:
    `{name, runs}` (runs logged), and `error` when logging stopped. A failure is reported,
    never raised: the sweep's results are already in the summary and matter more."""
    report: Dict[str, Any] = {"name": target.name, "runs": 0}
    try:
        runs = trial_runs(rows, run_id, target.name)
        aiplatform, states = _init(target)
        for run in runs:
            resume = aiplatform.ExperimentRun.get(run.name, experiment=target.name) is not None
            aiplatform.start_run(run.name, resume=resume)
            if run.params:
                aiplatform.log_params(run.params)
            if run.metrics:
                aiplatform.log_metrics(run.metrics)
            aiplatform.end_run(state=states.COMPLETE if run.completed else states.FAILED)
            report["runs"] += 1
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the summary says it
        report["error"] = f"{type(e).__name__}: {e}"
        print(f"WARNING: the trials were not all logged to experiment {target.name!r}: {report['error']}", file=sys.stderr)
    return report


def _init(target: ExperimentTarget) -> Any:
    """aiplatform, initialised for the experiment (no backing TensorBoard: the runs have no
    time series), and its run states. Against a plain-http endpoint (an emulator) it uses
    REST and anonymous credentials, as the launcher does: real credentials never go over
    plain http."""
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import execution_v1

    options: Dict[str, Any] = {"experiment": target.name, "experiment_tensorboard": False}
    if target.project:
        options["project"] = target.project
    if target.location:
        options["location"] = target.location
    if target.api_endpoint:
        options["api_endpoint"] = target.api_endpoint
    if target.api_endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        options.update(api_transport="rest", credentials=AnonymousCredentials())
    aiplatform.init(**options)
    return aiplatform, execution_v1.Execution.State
