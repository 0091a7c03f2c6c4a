"""Single values in the forms Vertex accepts: Cloud Storage URIs, durations, counts,
choices, environment variables. Trial and pipeline settings are checked with them."""

import posixpath
import re
from decimal import Decimal
from typing import Any, Iterable, Optional

from hydra_vertex_pipelines.components.sweep_files import GCS

from ..errors import ConfigError

_GCS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[A-Za-z0-9._=,+@/-]*)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 315_576_000_000  # google.protobuf.Duration's range (10,000 years)


def check_gcs_uri(value: Any, field: str) -> str:
    """A gs:// URI without a trailing slash. Empty, `.` and `..` segments are refused: the
    trial writes through the /gcs/ mount, which collapses them, while the launcher and
    the collector read the object names as written, so results would be lost."""
    if not isinstance(value, str) or not _GCS_URI.match(value):
        raise ConfigError(
            field,
            value,
            "a Cloud Storage URI gs://BUCKET[/PATH] (bucket: 3 or more lowercase letters, digits, '.', '_', '-'; "
            "path: letters, digits and . _ - = , + @ /)",
        )
    uri = value.rstrip("/")
    bucket, _, path = uri[len(GCS) :].partition("/")
    if path and {"", ".", ".."} & set(path.split("/")):
        normal = f"{GCS}{bucket}{posixpath.normpath('/' + path.lstrip('/'))}".rstrip("/")
        raise ConfigError(
            field,
            value,
            "a gs:// URI without empty, '.' or '..' path segments (the /gcs/ mount collapses them)",
            f"Try {normal!r}",
        )
    return uri


def duration(value: Any, field: str) -> str:
    """A protobuf Duration ("5400s") from seconds or text such as "90m", "1.5h", "7d": at most
    Duration's 315,576,000,000 s, in whole nanoseconds (Vertex parses nothing finer)."""
    text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value).strip().lower()
    match = None if isinstance(value, bool) else _DURATION.match(text)
    if match is None or Decimal(match.group(1)) <= 0:
        raise ConfigError(field, value, "a positive duration such as 3600, '3600s', '90m', '12h' or '7d'")
    seconds = Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise ConfigError(field, value, f"a duration of at most {MAX_DURATION_SECONDS}s, the range of a protobuf Duration")
    if (seconds * 10**9) % 1:
        raise ConfigError(field, value, "a duration in whole nanoseconds (at most 9 decimal places of seconds)")
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{format(seconds.normalize(), 'f')}s"


def check_count(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, value, f"a whole number >= {minimum}")
    return value


def check_one_of(value: Any, field: str, accepted: Iterable[str], suggestion: Optional[str] = None) -> str:
    """`value` if it is one of `accepted`; else a ConfigError listing them, and `suggestion`."""
    accepted = sorted(accepted)
    if value in accepted:
        return value
    hint = f"Did you mean {suggestion}?" if suggestion else ""
    raise ConfigError(field, value, "one of " + ", ".join(accepted), hint)


def check_env(env: Any, field: str) -> None:
    """Environment variables: valid names, no secrets by name or by value (env is written in
    clear text into pipeline.yaml and shown in the Vertex console). The value of a refused
    variable is never shown."""
    if not env:
        return  # detect-secrets is imported only when there is something to scan
    from .secrets import secret_kinds, secret_name

    for name, value in env.items():
        if not _ENV_NAME.match(str(name)):
            raise ConfigError(f"{field} key", name, "a variable name of letters, digits and '_', not starting with a digit")
        word = secret_name(str(name))
        if word:
            _refuse_secret(f"{field}.{name}", f"its name says it holds a secret ({word!r})")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{field}.{name}", value, "a string")
        kinds = secret_kinds(str(name), str(value)) if isinstance(value, str) else ()
        if kinds:
            _refuse_secret(f"{field}.{name}", f"its value looks like a secret (detect-secrets found: {', '.join(kinds)})")


def _refuse_secret(field: str, why: str) -> None:
    raise ConfigError(
        field,
        "<hidden>",
        f"no secrets: {why}, and env values are written in clear text into pipeline.yaml and shown in the Vertex console",
        "Read the secret inside the trial instead: from Secret Manager with the trial's service account "
        "(trial.service_account), or from a file mounted when the job runs. A variable that only looks "
        "secret (a commit hash, a name such as SORT_KEY) can be passed as an app override or a label instead",
    )
