"""The one JSON form of every file and answer this project writes: strict JSON.

Python's `json` writes `NaN`, `Infinity` and `-Infinity` for non-finite floats, which
strict parsers (JavaScript's `JSON.parse`, BigQuery, `jq`) refuse. Here a non-finite float
is written as a one-key object, `{"__float__": "nan"}`, `{"__float__": "inf"}` or
`{"__float__": "-inf"}`, and every other value as itself; `decode` turns those objects back
into the floats, so a reader gets the value the writer had. An object holding exactly the
one key `__float__` with one of those three strings is therefore read back as the float.

Standard library only: trials and the collector's image use it.
"""

import json
import math
from typing import Any, Union

FLOAT_KEY = "__float__"
_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _name(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def encode(value: Any) -> Any:
    """`value` with every non-finite float (in lists, tuples and dicts too) in its strict form."""
    if isinstance(value, float):
        return value if math.isfinite(value) else {FLOAT_KEY: _name(value)}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """`value` (as parsed) with each strict form of a non-finite float turned back into the float."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(FLOAT_KEY), str) and value[FLOAT_KEY] in _NAMES:
            return _NAMES[value[FLOAT_KEY]]
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """`value` as strict JSON text; `options` as `json.dumps` takes them."""
    return json.dumps(encode(value), allow_nan=False, **options)


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} is not JSON (non-finite numbers are written as {{{FLOAT_KEY!r}: ...}})")


def loads(text: Union[str, bytes]) -> Any:
    """JSON text -> its values, non-finite floats decoded. Files written by earlier versions
    may hold bare `NaN`/`Infinity` tokens: they are read as the floats."""
    return decode(json.loads(text))


def loads_strict(text: Union[str, bytes]) -> Any:
    """Strict JSON text -> its values, non-finite floats decoded; bare `NaN`/`Infinity` tokens
    are refused (ValueError), as strict parsers refuse them."""
    return decode(json.loads(text, parse_constant=_refuse))
