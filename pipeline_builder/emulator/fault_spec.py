"""Reads a fault plan (faults) from a YAML or JSON file and `--fault` options.

    seed: 7
    preemption_grace: 30          # seconds between a preemption's SIGTERM and its SIGKILL
    job_creation_quota: 60 per minute
    faults:
      - {kind: preempt, rate: 0.3, after: 5}
      - {kind: quota, display_name: "lr-0-1", attempt: 1}

`--fault` takes one rule as `KIND,key=value,...` (`preempt,rate=0.3,after=5`, several
attempts as `attempt=1|2`); a display-name pattern with a comma needs the file. Bad input names the field, the value and
what is accepted.
"""

import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .faults import (
    PLAN_FIELDS,
    PREEMPT_AFTER_S,
    PREEMPTION_GRACE_S,
    QUOTA_TEXT,
    RULE_FIELDS,
    FaultKind,
    FaultPlan,
    FaultRule,
    FaultSpecError,
)

_KINDS = ", ".join(k.value for k in FaultKind)


def load_plan(
    path: Optional[Path] = None,
    options: Sequence[str] = (),
    seed: Optional[int] = None,
    grace: Optional[float] = None,
    quota: Optional[str] = None,
) -> Optional[FaultPlan]:
    """The plan of a file and options (options add rules and override the file's values);
    None when nothing was asked."""
    data: Dict[str, Any] = _read(path) if path is not None else {}
    rules = [rule(r, f"faults[{i}]") for i, r in enumerate(data.get("faults") or [])]
    rules += [rule(_option(text), f"--fault {text!r}") for text in options]
    seed = seed if seed is not None else data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise FaultSpecError(f"seed: {seed!r} is not an integer")
    grace = grace if grace is not None else _seconds(data.get("preemption_grace", PREEMPTION_GRACE_S), "preemption_grace")
    limit = creation_quota(quota if quota is not None else data.get("job_creation_quota"))
    if not rules and limit is None and path is None:
        return None
    return FaultPlan(tuple(rules), seed, grace, limit)


def _read(path: Path) -> Dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML
    except (OSError, yaml.YAMLError) as e:
        raise FaultSpecError(f"faults file {path}: cannot be read ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FaultSpecError(f"faults file {path}: expected a mapping with {', '.join(PLAN_FIELDS)}")
    unknown = sorted(set(data) - set(PLAN_FIELDS))
    if unknown:
        raise FaultSpecError(f"faults file {path}: unknown field(s) {unknown}; accepted: {', '.join(PLAN_FIELDS)}")
    if not isinstance(data.get("faults") or [], list):
        raise FaultSpecError(f"faults file {path}: faults must be a list of rules")
    return data


def _option(text: str) -> Dict[str, Any]:
    kind, *pairs = text.split(",")
    fields: Dict[str, Any] = {"kind": kind.strip()}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise FaultSpecError(f"--fault {text!r}: {pair!r} is not key=value; keys: {', '.join(RULE_FIELDS[1:])}")
        fields[key.strip()] = value.strip()
    return fields


def rule(data: Any, where: str) -> FaultRule:
    """One rule from its fields (strings from `--fault` are converted)."""
    if not isinstance(data, Mapping):
        raise FaultSpecError(f"{where}: expected a mapping with {', '.join(RULE_FIELDS)}")
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise FaultSpecError(f"{where}: unknown field(s) {unknown}; accepted: {', '.join(RULE_FIELDS)}")
    try:
        kind = FaultKind(data.get("kind"))
    except ValueError:
        raise FaultSpecError(f"{where}: kind {data.get('kind')!r} is not one of {_KINDS}") from None
    rate = _number(data.get("rate", 1.0), f"{where}: rate")
    if not 0 < rate <= 1:
        raise FaultSpecError(f"{where}: rate {rate!r} must be a probability in (0, 1]")
    pattern = data.get("display_name")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as e:
            raise FaultSpecError(f"{where}: display_name {pattern!r} is not a regular expression ({e})") from None
    if "after" in data and kind != FaultKind.PREEMPT:
        raise FaultSpecError(f"{where}: after applies to kind preempt only, not {kind.value}")
    after = _seconds(data.get("after", PREEMPT_AFTER_S), f"{where}: after")
    machine = {key: _name(data.get(key), f"{where}: {key}") for key in ("machine_type", "accelerator_type")}
    return FaultRule(kind, rate, None if pattern is None else str(pattern), _attempts(data.get("attempt"), where), after, **machine)


def _name(value: Any, what: str) -> Optional[str]:
    """A machine or accelerator type as the CustomJob names it (`g2-standard-8`, `NVIDIA_L4`)."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise FaultSpecError(f"{what} {value!r} must be a machine or accelerator type name, e.g. g2-standard-8 or NVIDIA_L4")
    return value


def _attempts(value: Any, where: str) -> Tuple[int, ...]:
    if value is None:
        return ()
    items: List[Any] = value if isinstance(value, list) else str(value).split("|") if isinstance(value, str) else [value]
    try:
        attempts = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        attempts = ()
    if not attempts or any(a < 1 for a in attempts) or any(isinstance(v, (bool, float)) for v in items):
        raise FaultSpecError(f"{where}: attempt {value!r} must be a number >= 1 or a list of them (1: the first creation)")
    return attempts


def _number(value: Any, what: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise FaultSpecError(f"{what} {value!r} is not a number") from None


def _seconds(value: Any, what: str) -> float:
    seconds = _number(str(value).rstrip("s") if isinstance(value, str) else value, what)
    if not 0 <= seconds < float("inf"):
        raise FaultSpecError(f"{what} {value!r} must be seconds >= 0")
    return seconds


def creation_quota(value: Any) -> Optional[int]:
    """`60 per minute` (or a number: per minute) as 60; None as None."""
    if value is None:
        return None
    found = QUOTA_TEXT.match(str(value)) if not isinstance(value, int) else None
    limit = value if isinstance(value, int) and not isinstance(value, bool) else int(found.group(1)) if found else 0
    if limit < 1:
        raise FaultSpecError(
            f"job_creation_quota {value!r}: expected 'N per minute' with N >= 1 (Vertex's default: 60 per minute)"
        )
    return limit
