"""The part of Vertex ML Metadata's list `filter` syntax that google-cloud-aiplatform sends.

Its experiment calls filter contexts by `schema_title="..."` (alone or OR-ed in
parentheses), `display_name="..."` and `parent_contexts:"..."`, and executions and
artifacts by `in_context("...")`, all AND-ed. A filter with anything else is refused
(400), rather than answered with a wrong list.
"""

import re
from typing import Any, Callable, Mapping

_TERM = re.compile(r'^(?:(\w+)\s*(=|:)\s*("[^"]*"(?:\s*,\s*"[^"]*")*)|in_context\(\s*"([^"]*)"\s*\))$')
_KEYS = {"schema_title": "schemaTitle", "display_name": "displayName", "parent_contexts": "parentContexts"}

Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    """A filter this emulator does not understand."""


def parse(text: str) -> Predicate:
    """A predicate on a stored resource; "" matches everything. `in_context` matches
    nothing: only executions and artifacts are in contexts, and the emulator keeps none."""
    clauses = [c.strip() for c in re.split(r"\s+AND\s+", text.strip()) if c.strip()]
    tests = [_clause(c) for c in clauses]
    return lambda resource: all(test(resource) for test in tests)


def _clause(clause: str) -> Predicate:
    if clause.startswith("(") and clause.endswith(")"):
        clause = clause[1:-1]
    terms = [_term(t.strip()) for t in re.split(r"\s+OR\s+", clause)]
    return lambda resource: any(term(resource) for term in terms)


def _term(term: str) -> Predicate:
    match = _TERM.match(term)
    if match is None or (match.group(1) is not None and match.group(1) not in _KEYS):
        raise FilterError(f"unsupported filter term {term!r}: this emulator filters by {', '.join(_KEYS)} and in_context")
    key, op, quoted, _ = match.groups()
    if key is None:  # in_context("..."): nothing kept is in a context
        return lambda resource: False
    values = re.findall(r'"([^"]*)"', quoted)
    field = _KEYS[key]
    if op == ":":  # `has`: a list field holds any of the values
        return lambda resource: any(v in (resource.get(field) or []) for v in values)
    return lambda resource: str(resource.get(field, "")) in values
