"""The one clock of this project's records: UTC, in the two spellings its files use.

Records written by this project (manifest, result.json, summary.json) use Python's ISO
form (`+00:00`); resources served in Vertex's shape use RFC 3339 with `Z`, as Vertex does.
Standard library only: trials and the collector's image use it.
"""

from datetime import datetime, timezone
from typing import Optional


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(t: Optional[float] = None) -> str:
    """`t` (seconds since the epoch, default now) as `2026-01-02T03:04:05.678901+00:00`."""
    return (utc_now() if t is None else datetime.fromtimestamp(t, timezone.utc)).isoformat()


def rfc3339(t: Optional[float] = None) -> str:
    """`t` (default now) as Vertex spells times: `2026-01-02T03:04:05.678901Z`."""
    return iso_utc(t).replace("+00:00", "Z")
