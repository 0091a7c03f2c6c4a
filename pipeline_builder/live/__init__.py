"""A run seen while it goes on: the trials' records so far, read at a bounded cost (records),
and the live report.html the launcher keeps in the sweep dir while it follows (report)."""

from .records import Reading, RecordsSoFar, not_before
from .report import RELOAD_S, LiveReport, RunView, summary_now

__all__ = ["RELOAD_S", "LiveReport", "Reading", "RecordsSoFar", "RunView", "not_before", "summary_now"]
