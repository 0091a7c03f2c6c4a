"""Machine-hours of a trial's CustomJob: machines x hours, vCPU-hours and accelerator-hours,
Spot and standard apart, and an estimated cost from the user's own hourly rates.

THE one table of machine shapes. Source: Compute Engine's machine family guides
(https://cloud.google.com/compute/docs/general-purpose-machines,
https://cloud.google.com/compute/docs/compute-optimized-machines,
https://cloud.google.com/compute/docs/memory-optimized-machines,
https://cloud.google.com/compute/docs/accelerator-optimized-machines): a predefined
`SERIES-KIND-N` machine has N vCPUs and a fixed memory per vCPU; accelerator-optimized
machines (a2, a3, g2) carry their GPUs, which Vertex's machine_spec also names. A machine
type not in the table still counts in machine-hours; its vCPU-hours are left out and the
usage lists it under `unknown_machine_types`.

Standard library only: the collector runs it inside the pipeline.
"""

import math
import re
from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

SPOT = "spot"
STANDARD = "standard"  # every strategy but SPOT: STANDARD, FLEX_START, unset
TIERS = (SPOT, STANDARD)

# GB of memory per vCPU of predefined SERIES-KIND-N machine types.
MEMORY_PER_VCPU: Dict[str, float] = {
    "n1-standard": 3.75,
    "n1-highmem": 6.5,
    "n1-highcpu": 0.9,
    "n2-standard": 4,
    "n2-highmem": 8,
    "n2-highcpu": 1,
    "n2d-standard": 4,
    "n2d-highmem": 8,
    "n2d-highcpu": 1,
    "e2-standard": 4,
    "e2-highmem": 8,
    "e2-highcpu": 1,
    "c2-standard": 4,
    "c2d-standard": 4,
    "c2d-highmem": 8,
    "c2d-highcpu": 2,
    "c3-standard": 4,
    "c3-highmem": 8,
    "c3-highcpu": 2,
    "g2-standard": 4,
}
# Machines whose shape is not SERIES-KIND-N alone: vCPUs, GB, accelerator type and count.
SHAPES: Dict[str, "Shape"] = {}


class Shape(NamedTuple):
    """What one machine of a type holds."""

    vcpus: int
    memory_gb: float
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0


def _gpu_machines() -> Dict[str, Shape]:
    shapes = {}
    for n in (1, 2, 4, 8):
        shapes[f"a2-highgpu-{n}g"] = Shape(12 * n, 85.0 * n, "NVIDIA_TESLA_A100", n)
        shapes[f"a2-ultragpu-{n}g"] = Shape(12 * n, 170.0 * n, "NVIDIA_A100_80GB", n)
    shapes["a2-megagpu-16g"] = Shape(96, 1360.0, "NVIDIA_TESLA_A100", 16)
    shapes["a3-highgpu-8g"] = Shape(208, 1872.0, "NVIDIA_H100_80GB", 8)
    shapes["a3-megagpu-8g"] = Shape(208, 1872.0, "NVIDIA_H100_MEGA_80GB", 8)
    # g2-standard-N: N vCPUs, 4 GB each, and this many L4s.
    for n, gpus in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8)):
        shapes[f"g2-standard-{n}"] = Shape(n, 4.0 * n, "NVIDIA_L4", gpus)
    return shapes


SHAPES.update(_gpu_machines())
_PREDEFINED = re.compile(r"^([a-z0-9]+-[a-z]+)-(\d+)$")


def machine_shape(machine_type: str) -> Optional[Shape]:
    """The vCPUs, memory and built-in accelerators of one machine, or None if unknown."""
    if machine_type in SHAPES:
        return SHAPES[machine_type]
    match = _PREDEFINED.match(machine_type)
    if match and match.group(1) in MEMORY_PER_VCPU:
        vcpus = int(match.group(2))
        return Shape(vcpus, MEMORY_PER_VCPU[match.group(1)] * vcpus)
    return None


def tier(strategy: Optional[str]) -> str:
    """Spot or standard, from the CustomJob's scheduling strategy."""
    return SPOT if str(strategy or "").upper() == "SPOT" else STANDARD


def pool_machines(worker_pool_specs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Each pool's machine and replicas, from WorkerPoolSpecs in proto or JSON field names."""
    out = []
    for pool in worker_pool_specs:
        spec = pool.get("machine_spec") or pool.get("machineSpec") or {}
        count = int(pool.get("replica_count", pool.get("replicaCount", 0)) or 0)
        if not count:
            continue
        accelerator = spec.get("accelerator_type") or spec.get("acceleratorType") or None
        if accelerator == "ACCELERATOR_TYPE_UNSPECIFIED":
            accelerator = None
        machine: Dict[str, Any] = {
            "machine_type": spec.get("machine_type") or spec.get("machineType") or "",
            "replica_count": count,
        }
        if accelerator:
            machine["accelerator_type"] = accelerator
            machine["accelerator_count"] = int(spec.get("accelerator_count", spec.get("acceleratorCount", 0)) or 0)
        out.append(machine)
    return out


def hours_between(start: Any, end: Any) -> Optional[float]:
    """Hours from `start` to `end` (ISO 8601 or RFC 3339 strings), or None if either is missing."""
    try:
        begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        finish = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (finish - begin).total_seconds() / 3600.0)


def empty() -> Dict[str, Any]:
    """Usage of nothing: the shape every usage has, so totals add field by field."""
    return {
        "machine_hours": {SPOT: 0.0, STANDARD: 0.0},
        "vcpu_hours": {SPOT: 0.0, STANDARD: 0.0},
        "by_machine_type": {},
        "accelerator_hours": {},
        "unknown_machine_types": [],
    }


def _add(split: Dict[str, Dict[str, float]], key: str, where: str, hours: float) -> None:
    split.setdefault(key, {SPOT: 0.0, STANDARD: 0.0})[where] += hours


def usage(machines: Sequence[Mapping[str, Any]], strategy: Optional[str], hours: float) -> Dict[str, Any]:
    """One attempt's usage: every replica of every pool (`pool_machines`) for `hours`."""
    out, where = empty(), tier(strategy)
    for m in machines:
        machine_hours = m["replica_count"] * hours
        out["machine_hours"][where] += machine_hours
        _add(out["by_machine_type"], m["machine_type"], where, machine_hours)
        shape = machine_shape(m["machine_type"])
        if shape is None:
            if m["machine_type"] not in out["unknown_machine_types"]:
                out["unknown_machine_types"].append(m["machine_type"])
        else:
            out["vcpu_hours"][where] += shape.vcpus * machine_hours
        accelerator = m.get("accelerator_type") or (shape.accelerator_type if shape else None)
        count = m.get("accelerator_count") if m.get("accelerator_type") else (shape.accelerator_count if shape else 0)
        if accelerator and count:
            _add(out["accelerator_hours"], accelerator, where, count * machine_hours)
    return out


def total(usages: Iterable[Optional[Mapping[str, Any]]]) -> Dict[str, Any]:
    """The sum of usages (None ones skipped)."""
    out = empty()
    for u in usages:
        if not u:
            continue
        for key in ("machine_hours", "vcpu_hours"):
            for where in TIERS:
                out[key][where] += u[key][where]
        for key in ("by_machine_type", "accelerator_hours"):
            for name, split in u[key].items():
                for where in TIERS:
                    _add(out[key], name, where, split[where])
        out["unknown_machine_types"] += [t for t in u["unknown_machine_types"] if t not in out["unknown_machine_types"]]
    return out


def estimated_cost(u: Mapping[str, Any], rates: Mapping[str, Any]) -> Dict[str, Any]:
    """An estimate from the user's hourly rates (`machine_types` and `accelerator_types`,
    each name -> {spot, standard}); hours without a rate are listed as `unpriced`, not guessed."""
    cost = {SPOT: 0.0, STANDARD: 0.0}
    unpriced: List[str] = []
    for key, table in (("by_machine_type", "machine_types"), ("accelerator_hours", "accelerator_types")):
        for name, split in u[key].items():
            for where in TIERS:
                if split[where] <= 0:
                    continue
                rate = ((rates.get(table) or {}).get(name) or {}).get(where)
                if rate is None:
                    unpriced.append(f"{name} ({where})")
                else:
                    cost[where] += split[where] * float(rate)
    return {
        "note": "an estimate from hydra.launcher.cost.rates, not a bill",
        "currency": rates.get("currency") or "",
        SPOT: cost[SPOT],
        STANDARD: cost[STANDARD],
        "total": cost[SPOT] + cost[STANDARD],
        "unpriced": unpriced,
    }


def fmt_hours(hours: float) -> str:
    """Hours to three significant digits (`0.000463`, `1.5`, `123`), whole from 1,000
    (`12,345`), `<0.0001` below that."""
    if hours == 0 or not math.isfinite(hours):
        return "0" if hours == 0 else str(hours)
    if hours < 1e-4:
        return "<0.0001"
    return format(hours, ".3g") if hours < 1000 else f"{hours:,.0f}"


def fmt_money(amount: float) -> str:
    """An amount to the cent; `<0.01` below a cent."""
    return f"{amount:,.2f}" if amount >= 0.01 or amount == 0 else "<0.01"


def usage_text(u: Mapping[str, Any], cost: Optional[Mapping[str, Any]] = None) -> str:
    """`0.021 machine-hours (Spot 0, standard 0.021)`, vCPU- and accelerator-hours, and the estimate."""
    mh = u["machine_hours"]
    parts = [
        f"{fmt_hours(mh[SPOT] + mh[STANDARD])} machine-hours (Spot {fmt_hours(mh[SPOT])}, standard {fmt_hours(mh[STANDARD])})",
        f"{fmt_hours(sum(u['vcpu_hours'].values()))} vCPU-hours",
    ]
    parts += [f"{fmt_hours(sum(s.values()))} {name}-hours" for name, s in sorted(u["accelerator_hours"].items())]
    text = ", ".join(parts)
    if u["unknown_machine_types"]:
        text += f" (vCPUs unknown for {', '.join(u['unknown_machine_types'])})"
    if cost:
        text += f"; estimated cost {fmt_money(cost['total'])} {cost['currency']}".rstrip() + " from your rates"
        if cost["unpriced"]:
            text += f" (no rate for {', '.join(cost['unpriced'])})"
    return text
