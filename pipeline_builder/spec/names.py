"""Vertex's naming rules: pipeline names, job ids, display names and labels."""

import hashlib
import re
from datetime import datetime
from typing import Dict, Mapping, Optional

from hydra_vertex_pipelines.components.clock import utc_now

from ..errors import ConfigError

MAX_DISPLAY_NAME = 128
MAX_PIPELINE_NAME = 64  # longer names have been rejected by Vertex's scheduler
MAX_LABEL = 63
MAX_LABELS = 64

_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]*$")


def _slug(text: str, allowed: str) -> str:
    """Lower-cases `text` and turns every run of other characters into one dash."""
    slug = re.sub(f"[^{allowed}]+", "-", text.lower()).strip("-")
    return re.sub("-+", "-", slug)


def pipeline_name(app_name: str) -> str:
    """A valid pipeline name derived from an app name (`my_train.py` -> `my-train`)."""
    slug = _slug(app_name, "a-z0-9")
    if not slug or not slug[0].isalpha():
        slug = f"sweep-{slug}".rstrip("-")
    return slug[:MAX_PIPELINE_NAME].rstrip("-")


def check_pipeline_name(name: str, field: str) -> str:
    if len(name) > MAX_PIPELINE_NAME or not _PIPELINE_NAME.match(name) or name.endswith("-"):
        raise ConfigError(
            field,
            name,
            f"lowercase letters, digits and dashes, starting with a letter, at most {MAX_PIPELINE_NAME} characters",
            f"Try {pipeline_name(name)!r}",
        )
    return name


def run_id(name: str, key: str, now: Optional[datetime] = None) -> str:
    """A PipelineJob id for one sweep batch: readable, unique, and a valid label value.

    `key` (sweep dir and batch) goes into a short hash so two sweeps started in the same
    second still differ.
    """
    now = now or utc_now()
    digest = hashlib.sha256(f"{key}|{now.isoformat()}".encode()).hexdigest()[:6]
    return f"{name[:40].rstrip('-')}-{now:%Y%m%d-%H%M%S}-{digest}"


# What no display name holds: control characters, and surrogates, which cannot be encoded
# as UTF-8 at all. Inside gcpc's payload template (`"display_name": "..."`, pasted unescaped
# and parsed by a strict json.loads) `"` and `\` break it too, and `{{` could be read as a
# placeholder by a driver that substitutes one input's value into another's.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_QUOTES = str.maketrans({'"': "'", "\\": "/"})


def is_display_name(text: str) -> bool:
    """Whether Vertex takes `text` as a display name as it is (a PipelineJob's: it does
    not pass through gcpc's payload template)."""
    return len(text) <= MAX_DISPLAY_NAME and _CONTROL.search(text) is None


def display_name(text: str) -> str:
    """A CustomJob display name that survives gcpc's payload template whatever the
    overrides hold: whitespace runs become one space, `"` becomes `'`, `\\` becomes `/`,
    other control characters are dropped, `{{` is split, and the result is cut to
    Vertex's 128 characters, marking the cut."""
    text = _CONTROL.sub(lambda m: " " if m.group().isspace() else "", text)
    text = " ".join(text.split()).translate(_QUOTES)
    text = re.sub(r"\{(?=\{)", "{ ", text)
    if len(text) <= MAX_DISPLAY_NAME:
        return text
    return text[: MAX_DISPLAY_NAME - 1] + "…"


def label_value(text: str) -> str:
    """A valid label value derived from any text (for labels the launcher adds)."""
    return _slug(text, "a-z0-9_-")[:MAX_LABEL].rstrip("-")


def check_labels(labels: Mapping[str, str], field: str) -> Dict[str, str]:
    """Labels as Vertex accepts them, or a ConfigError naming the first bad one."""
    checked: Dict[str, str] = {}
    rule = f"at most {MAX_LABEL} characters of lowercase letters, digits, '_' and '-'"
    for key, value in labels.items():
        key_s = str(key)
        value_s = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if len(key_s) > MAX_LABEL or not _LABEL_KEY.match(key_s):
            raise ConfigError(f"{field} key", key_s, rule + ", starting with a letter", f"Try {label_value(key_s)!r}")
        if len(value_s) > MAX_LABEL or not _LABEL_VALUE.match(value_s):
            raise ConfigError(f"{field}.{key_s}", value_s, rule, f"Try {label_value(value_s)!r}")
        checked[key_s] = value_s
    if len(checked) > MAX_LABELS:
        raise ConfigError(field, f"{len(checked)} labels", f"at most {MAX_LABELS} labels")
    return checked
