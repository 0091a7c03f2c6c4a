"""Checks of trial and pipeline settings, run before anything is written or sent."""

import difflib
import re
from typing import Any, Iterable, List, Optional

from . import vertex_enums
from .errors import ConfigError
from .names import check_labels
from .settings import TrialSettings

_GCS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[A-Za-z0-9._=,+@/-]*)?$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
_NETWORK = re.compile(r"^projects/[^/\s]+/global/networks/[^/\s]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
ENTRIES = ("auto", "command", "pickle")


def check_gcs_uri(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _GCS_URI.match(value):
        raise ConfigError(
            field,
            value,
            "a Cloud Storage URI gs://BUCKET[/PATH] (bucket: 3 or more lowercase letters, digits, '.', '_', '-'; "
            "path: letters, digits and . _ - = , + @ /)",
        )
    return value.rstrip("/")


def duration(value: Any, field: str) -> str:
    """A Vertex duration ("5400s") from seconds or text such as "90m", "1.5h", "7d"."""
    match = _DURATION.match(str(value).strip().lower()) if not isinstance(value, bool) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(field, value, "a positive duration such as 3600, '3600s', '90m', '12h' or '7d'")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"


def _count(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, value, f"a whole number >= {minimum}")
    return value


def _choice(value: Any, field: str, accepted: Iterable[str], suggestion: Optional[str] = None) -> str:
    accepted = sorted(accepted)
    if value in accepted:
        return value
    hint = f"Did you mean {suggestion}?" if suggestion else ""
    raise ConfigError(field, value, "one of " + ", ".join(accepted), hint)


def suggest_accelerator(value: str) -> Optional[str]:
    """The accelerator types a near miss most likely meant (`nvidia-t4` -> NVIDIA_TESLA_T4)."""
    wanted = re.sub(r"[^A-Z0-9]+", "_", value.upper()).strip("_")
    names = sorted(vertex_enums.ACCELERATOR_TYPES)
    if wanted in names:
        return wanted
    tokens = set(wanted.split("_"))
    containing = [n for n in names if tokens <= set(n.split("_"))]
    if containing:
        return " or ".join(sorted(containing, key=len)[:3])
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.6)
    return close[0] if close else None


def check_trial_settings(s: TrialSettings, field: str, require_image: bool = True) -> None:
    """Raises ConfigError for the first setting Vertex would reject; `field` is its prefix."""
    if s.image_uri is None or not str(s.image_uri).strip():
        if require_image:
            raise ConfigError(
                f"{field}.image_uri",
                s.image_uri,
                "a container image that holds the app and this package, "
                "e.g. us-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG (only local mode runs without one)",
            )
    elif re.search(r"\s", s.image_uri):
        raise ConfigError(f"{field}.image_uri", s.image_uri, "an image reference without spaces")
    _choice(s.entry, f"{field}.entry", ENTRIES)
    if s.command is not None:
        if len(s.command) == 0 or not all(isinstance(a, str) and a for a in s.command):
            raise ConfigError(
                f"{field}.command", s.command, "null (re-run the app) or a non-empty list of non-empty strings"
            )
    if not isinstance(s.python, str) or not s.python.strip():
        raise ConfigError(f"{field}.python", s.python, "the interpreter's name or path in the image, e.g. python")
    if not isinstance(s.machine_type, str) or not _MACHINE_TYPE.match(s.machine_type):
        raise ConfigError(
            f"{field}.machine_type",
            s.machine_type,
            "a Compute Engine machine type such as n1-standard-4 or a2-highgpu-1g",
        )
    _count(s.accelerator_count, f"{field}.accelerator_count", 0)
    _count(s.replica_count, f"{field}.replica_count", 1)
    if s.boot_disk_size_gb is not None:
        _count(s.boot_disk_size_gb, f"{field}.boot_disk_size_gb", 1)
    if s.accelerator_type is None:
        if s.accelerator_count > 0:
            raise ConfigError(
                f"{field}.accelerator_type",
                None,
                f"an accelerator type when accelerator_count={s.accelerator_count}, e.g. NVIDIA_TESLA_T4",
            )
    else:
        if not vertex_enums.is_accelerator_type(s.accelerator_type):
            _choice(
                s.accelerator_type,
                f"{field}.accelerator_type",
                vertex_enums.ACCELERATOR_TYPES,
                suggest_accelerator(str(s.accelerator_type)),
            )
        if s.accelerator_count == 0:
            raise ConfigError(
                f"{field}.accelerator_count",
                0,
                f"a whole number >= 1 when accelerator_type={s.accelerator_type}",
            )
    lower = {t.lower(): t for t in vertex_enums.BOOT_DISK_TYPES}
    if s.boot_disk_type is not None:
        _choice(s.boot_disk_type, f"{field}.boot_disk_type", vertex_enums.BOOT_DISK_TYPES, lower.get(str(s.boot_disk_type).lower()))
    upper = str(s.strategy).upper().replace("-", "_")
    _choice(s.strategy, f"{field}.strategy", vertex_enums.STRATEGIES, upper if upper in vertex_enums.STRATEGIES else None)
    if s.timeout is not None:
        duration(s.timeout, f"{field}.timeout")
    if s.max_wait_duration is not None:
        duration(s.max_wait_duration, f"{field}.max_wait_duration")
    for name, value in s.env.items():
        if not _ENV_NAME.match(str(name)):
            raise ConfigError(f"{field}.env key", name, "a variable name of letters, digits and '_', not starting with a digit")
        if _SECRET_NAME.search(str(name)):
            raise ConfigError(
                f"{field}.env.{name}",
                "<hidden>",
                "no secrets: trial.env is written in clear text into pipeline.yaml and shown in the "
                "Vertex console",
                "Read the secret inside the trial, e.g. from Secret Manager with the trial's service account",
            )
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{field}.env.{name}", value, "a string")
    if s.service_account is not None and not _EMAIL.match(s.service_account):
        raise ConfigError(f"{field}.service_account", s.service_account, "a service account email, NAME@PROJECT.iam.gserviceaccount.com")
    if s.network is not None and not _NETWORK.match(s.network):
        raise ConfigError(f"{field}.network", s.network, "projects/PROJECT_NUMBER/global/networks/NETWORK")
    if s.base_output_dir is not None:
        check_gcs_uri(s.base_output_dir, f"{field}.base_output_dir")
    check_labels(s.labels, f"{field}.labels")


def check_one_of(value: Any, field: str, accepted: List[str]) -> str:
    return _choice(value, field, accepted)
