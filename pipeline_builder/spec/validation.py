"""Checks of trial and pipeline settings, run before anything is written or sent."""

import difflib
import posixpath
import re
from decimal import Decimal
from typing import Any, Iterable, List, Mapping, Optional, Sequence

from hydra_vertex_pipelines.components.sweep_files import GCS

from . import vertex_enums
from ..errors import ConfigError
from .names import check_labels
from .settings import Code, Entry, TrialSettings

_GCS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[A-Za-z0-9._=,+@/-]*)?$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
# Resource-name segments: these strings are pasted unescaped into gcpc's payload template,
# so they hold no quotes, backslashes, braces or control characters (Vertex's ids never do).
_SEGMENT = r"[A-Za-z0-9._:~-]+"
_NETWORK = re.compile(rf"^projects/{_SEGMENT}/global/networks/{_SEGMENT}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_KMS_KEY = re.compile(rf"^projects/{_SEGMENT}/locations/({_SEGMENT})/keyRings/{_SEGMENT}/cryptoKeys/{_SEGMENT}$")
_TENSORBOARD = re.compile(rf"^projects/{_SEGMENT}/locations/({_SEGMENT})/tensorboards/[0-9]+$")
_EXPERIMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_PERSISTENT_RESOURCE = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")
_NETWORK_ATTACHMENT = re.compile(r"^(projects/[^/\s]+/regions/[^/\s]+/networkAttachments/)?[a-z]([-a-z0-9]*[a-z0-9])?$")
_IP_RANGE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Fields of google.cloud.aiplatform_v1.types.PscInterfaceConfig (tests check them against it).
PSC_INTERFACE_FIELDS = frozenset({"network_attachment", "dns_peering_configs"})
DNS_PEERING_FIELDS = frozenset({"domain", "target_project", "target_network"})
CODE_MODES = tuple(c.value for c in Code)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 315_576_000_000  # google.protobuf.Duration's range (10,000 years)
ENTRIES = tuple(e.value for e in Entry)
MAX_PARALLELISM = 2**31 - 1  # PipelineTaskSpec.IteratorPolicy.parallelism_limit is an int32
# Linux's MAX_ARG_STRLEN: one argument (or environment string) of at most 32 pages,
# its terminating NUL included. gcpc's launcher gets the whole CustomJob as one argument.
MAX_ARG_BYTES = 32 * 4096 - 1


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
        raise ConfigError(field, value, "a gs:// URI without empty, '.' or '..' path segments (the /gcs/ mount collapses them)", f"Try {normal!r}")
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
    _choice(s.code, f"{field}.code", CODE_MODES)
    if s.code == "package":
        _check_package(s, field, require_image)
    elif s.image_uri is None or not str(s.image_uri).strip():
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
    _count(s.replica_count, f"{field}.replica_count", 1)
    _check_machine(s.accelerator_type, s.accelerator_count, s.boot_disk_type, s.boot_disk_size_gb, field)
    _check_pools(s, field)
    upper = str(s.strategy).upper().replace("-", "_")
    _choice(s.strategy, f"{field}.strategy", vertex_enums.STRATEGIES, upper if upper in vertex_enums.STRATEGIES else None)
    if s.timeout is not None:
        duration(s.timeout, f"{field}.timeout")
    if s.max_wait_duration is not None:
        duration(s.max_wait_duration, f"{field}.max_wait_duration")
        if s.strategy != "FLEX_START":
            raise ConfigError(
                f"{field}.max_wait_duration",
                s.max_wait_duration,
                f"null unless strategy is FLEX_START (it is {s.strategy}; Vertex only waits for FLEX_START capacity)",
            )
    _check_retries(s, field)
    _check_env(s.env, f"{field}.env")
    _check_placement(s, field)
    if s.base_output_dir is not None:
        check_gcs_uri(s.base_output_dir, f"{field}.base_output_dir")
    check_labels(s.labels, f"{field}.labels")


def _check_env(env: Any, field: str) -> None:
    for name, value in env.items():
        if not _ENV_NAME.match(str(name)):
            raise ConfigError(f"{field} key", name, "a variable name of letters, digits and '_', not starting with a digit")
        if _SECRET_NAME.search(str(name)):
            raise ConfigError(
                f"{field}.{name}",
                "<hidden>",
                "no secrets: env values are written in clear text into pipeline.yaml and shown in the "
                "Vertex console",
                "Read the secret inside the trial, e.g. from Secret Manager with the trial's service account",
            )
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{field}.{name}", value, "a string")


def _check_machine(
    accelerator_type: Optional[str], accelerator_count: Any, disk_type: Optional[str], disk_size: Any, field: str
) -> None:
    _count(accelerator_count, f"{field}.accelerator_count", 0)
    if disk_size is not None:
        _count(disk_size, f"{field}.boot_disk_size_gb", 1)
    if accelerator_type is None:
        if accelerator_count > 0:
            raise ConfigError(
                f"{field}.accelerator_type",
                None,
                f"an accelerator type when accelerator_count={accelerator_count}, e.g. NVIDIA_TESLA_T4",
            )
    else:
        if not vertex_enums.is_accelerator_type(accelerator_type):
            _choice(
                accelerator_type,
                f"{field}.accelerator_type",
                vertex_enums.ACCELERATOR_TYPES,
                suggest_accelerator(str(accelerator_type)),
            )
        if accelerator_count == 0:
            raise ConfigError(
                f"{field}.accelerator_count",
                0,
                f"a whole number >= 1 when accelerator_type={accelerator_type}",
            )
    lower = {t.lower(): t for t in vertex_enums.BOOT_DISK_TYPES}
    if disk_type is not None:
        _choice(disk_type, f"{field}.boot_disk_type", vertex_enums.BOOT_DISK_TYPES, lower.get(str(disk_type).lower()))


def _check_pools(s: TrialSettings, field: str) -> None:
    """Extra worker pools: each checked like the chief; pool positions must not clash."""
    for name in ("workers", "parameter_servers", "reduction_server"):
        pool, where = getattr(s, name), f"{field}.{name}"
        _count(pool.replica_count, f"{where}.replica_count", 0)
        if pool.machine_type is not None and (not isinstance(pool.machine_type, str) or not _MACHINE_TYPE.match(pool.machine_type)):
            raise ConfigError(f"{where}.machine_type", pool.machine_type, "null (the chief's) or a machine type such as n1-standard-8")
        if pool.machine_type is None and (pool.accelerator_type is not None or pool.accelerator_count):
            raise ConfigError(
                f"{where}.accelerator_type",
                pool.accelerator_type,
                f"null while {where}.machine_type is null (the pool then takes the chief's machine and accelerators)",
            )
        _check_machine(pool.accelerator_type, pool.accelerator_count, pool.boot_disk_type, pool.boot_disk_size_gb, where)
        if pool.image_uri is not None and (not str(pool.image_uri).strip() or re.search(r"\s", str(pool.image_uri))):
            raise ConfigError(f"{where}.image_uri", pool.image_uri, "null (the chief's) or an image reference without spaces")
        if pool.command is not None and (len(pool.command) == 0 or not all(isinstance(a, str) and a for a in pool.command)):
            raise ConfigError(f"{where}.command", pool.command, "null (the chief's command) or a non-empty list of non-empty strings")
        if pool.args and pool.command is None:
            raise ConfigError(f"{where}.args", list(pool.args), f"empty unless {where}.command is set (else the pool runs the chief's command)")
        _check_env(pool.env, f"{where}.env")
    if s.replica_count > 1 and s.workers.replica_count:
        raise ConfigError(
            f"{field}.replica_count",
            s.replica_count,
            f"1 when {field}.workers.replica_count is set (replica_count > 1 is a shortcut for identical workers)",
        )
    if s.parameter_servers.replica_count and s.reduction_server.replica_count:
        raise ConfigError(
            f"{field}.reduction_server.replica_count",
            s.reduction_server.replica_count,
            f"0 when {field}.parameter_servers are set: both take worker pool 2 of the CustomJob",
        )
    second = next((n for n in ("parameter_servers", "reduction_server") if getattr(s, n).replica_count), None)
    if second and s.replica_count == 1 and not s.workers.replica_count:
        raise ConfigError(
            f"{field}.{second}.replica_count",
            getattr(s, second).replica_count,
            f"0 unless the trial has workers ({field}.workers.replica_count >= 1 or {field}.replica_count >= 2): "
            "worker pool 1 would be empty, and gcpc's launcher drops empty pools, so this pool would run as pool 1 (the workers) on Vertex",
        )


def _check_retries(s: TrialSettings, field: str) -> None:
    if not isinstance(s.disable_retries, bool):
        raise ConfigError(f"{field}.disable_retries", s.disable_retries, "true or false")
    _count(s.retries, f"{field}.retries", 0)
    if s.retries:
        for name in ("retry_backoff", "retry_backoff_max"):
            text = duration(getattr(s, name), f"{field}.{name}")
            if "." in text:
                raise ConfigError(f"{field}.{name}", getattr(s, name), "a whole number of seconds, e.g. '60s', '10m'")
        factor = s.retry_backoff_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
            raise ConfigError(f"{field}.retry_backoff_factor", factor, "a number >= 1 (2: each wait doubles)")


def _check_placement(s: TrialSettings, field: str) -> None:
    """Network, security and tracking settings, in the forms Vertex accepts."""
    _check_identity(s.service_account, s.network, s.reserved_ip_ranges, field)
    if s.psc_interface_config:
        _check_psc(s.psc_interface_config, f"{field}.psc_interface_config")
        if s.network is not None:
            raise ConfigError(
                f"{field}.psc_interface_config", "<set>", f"unset when {field}.network is set: a job uses VPC peering or a PSC interface, not both"
            )
    if s.encryption_spec_key_name is not None and not _KMS_KEY.match(s.encryption_spec_key_name):
        raise ConfigError(
            f"{field}.encryption_spec_key_name",
            s.encryption_spec_key_name,
            "a Cloud KMS key: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY",
        )
    if s.persistent_resource_id is not None and not _PERSISTENT_RESOURCE.match(str(s.persistent_resource_id)):
        raise ConfigError(
            f"{field}.persistent_resource_id",
            s.persistent_resource_id,
            "the ID of a persistent resource in the pipeline's project and location (5-63 lowercase letters, digits, '-', starting with a letter)",
        )
    if s.tensorboard is not None:
        if not _TENSORBOARD.match(s.tensorboard):
            raise ConfigError(f"{field}.tensorboard", s.tensorboard, "projects/PROJECT/locations/LOCATION/tensorboards/ID")
        if s.service_account is None:
            raise ConfigError(
                f"{field}.service_account",
                None,
                f"a service account when {field}.tensorboard is set: Vertex uploads TensorBoard logs only for jobs that run as one",
            )


def _check_identity(service_account: Any, network: Any, ranges: Sequence[Any], field: str) -> None:
    """Who a job runs as and which VPC it joins: the same rules for trials and the PipelineJob."""
    if service_account is not None and not (isinstance(service_account, str) and _EMAIL.match(service_account)):
        raise ConfigError(f"{field}.service_account", service_account, "a service account email, NAME@PROJECT.iam.gserviceaccount.com")
    if network is not None and not (isinstance(network, str) and _NETWORK.match(network)):
        raise ConfigError(f"{field}.network", network, "projects/PROJECT_NUMBER/global/networks/NETWORK")
    for name in ranges:
        if not isinstance(name, str) or not _IP_RANGE_NAME.match(name):
            raise ConfigError(f"{field}.reserved_ip_ranges", name, "names of reserved IP ranges of the network, e.g. vertex-ai-range")
    if ranges and network is None:
        raise ConfigError(f"{field}.network", None, f"a network when {field}.reserved_ip_ranges is set (the ranges belong to it)")


def _check_psc(config: Any, field: str) -> None:
    if not isinstance(config, dict) or set(config) - PSC_INTERFACE_FIELDS:
        unknown = sorted(set(config) - PSC_INTERFACE_FIELDS) if isinstance(config, dict) else config
        raise ConfigError(field, unknown, "a mapping with " + " and ".join(sorted(PSC_INTERFACE_FIELDS)))
    attachment = config.get("network_attachment")
    if not isinstance(attachment, str) or not _NETWORK_ATTACHMENT.match(attachment):
        raise ConfigError(
            f"{field}.network_attachment", attachment, "a network attachment: NAME or projects/PROJECT/regions/REGION/networkAttachments/NAME"
        )
    for peering in config.get("dns_peering_configs") or []:
        if not isinstance(peering, dict) or set(peering) - DNS_PEERING_FIELDS or "domain" not in peering:
            raise ConfigError(f"{field}.dns_peering_configs", peering, "mappings with domain, target_project, target_network")


def _check_package(s: TrialSettings, field: str, require_image: bool) -> None:
    where = f"{field}.package"
    image = s.package.executor_image_uri
    if (image is None or not str(image).strip()) and require_image:
        raise ConfigError(
            f"{where}.executor_image_uri",
            image,
            "a Vertex prebuilt training image, e.g. us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest",
        )
    if image is not None and re.search(r"\s", str(image)):
        raise ConfigError(f"{where}.executor_image_uri", image, "an image reference without spaces")
    if s.package.python_module is not None and not _MODULE.match(str(s.package.python_module)):
        raise ConfigError(f"{where}.python_module", s.package.python_module, "a dotted module name, e.g. trainer.task")
    if s.command is not None:
        raise ConfigError(f"{field}.command", s.command, f"null when {field}.code=package (the trial runs python -m {where}.python_module)")


def check_kms_key(key: Any, location: str, field: str) -> None:
    """A CMEK key, in the region of the resources it protects."""
    match = _KMS_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        raise ConfigError(field, key, "a Cloud KMS key: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY")
    if match.group(1) != location:
        raise ConfigError(field, key, f"a key in location {location} (the pipeline's location); this one is in {match.group(1)}")


def check_one_of(value: Any, field: str, accepted: List[str]) -> str:
    return _choice(value, field, accepted)


# Keys of `hydra.launcher` that check_launcher_settings reads.
LAUNCHER_SETTINGS = ("service_account", "network", "reserved_ip_ranges", "collector_image", "display_name", "max_parallel", "experiment")


def check_launcher_settings(settings: Mapping[str, Any], field: str) -> None:
    """The PipelineJob's own settings, checked as their trial-level twins are and before
    anything is written: otherwise the SDK refuses some after files exist, kfp an
    oversized parallelism mid-compile, and Vertex the rest after submission."""
    ranges = settings.get("reserved_ip_ranges") or []
    _check_identity(settings.get("service_account"), settings.get("network"), list(ranges), field)
    image = settings.get("collector_image")
    if image is not None and (not isinstance(image, str) or not image.strip() or re.search(r"\s", image)):
        raise ConfigError(f"{field}.collector_image", image, "null (the trial image) or an image reference without spaces")
    name = settings.get("display_name")
    if name is not None and (not isinstance(name, str) or len(name) > 128 or re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", name)):
        raise ConfigError(f"{field}.display_name", name, "null (the run id) or at most 128 characters without control characters")
    limit = settings.get("max_parallel")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PARALLELISM):
        raise ConfigError(f"{field}.max_parallel", limit, f"null or a whole number from 1 to {MAX_PARALLELISM} (a pipeline loop's int32 parallelism limit)")
    experiment = settings.get("experiment")
    if experiment is not None and not (isinstance(experiment, str) and _EXPERIMENT.match(experiment)):
        raise ConfigError(f"{field}.experiment", experiment, "an experiment name: 1-128 lowercase letters, digits and '-', starting with a letter or digit")


def check_arguments(arguments: Iterable[str], payload_bytes: int, field: str) -> None:
    """A trial's arguments and environment strings, and gcpc's `--payload` (the whole
    CustomJob as one argument): each within Linux's limit for one argument, in UTF-8 and
    without NUL, or the process could not start on Vertex."""
    for arg in arguments:
        try:
            size = len(arg.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConfigError(field, arg, "text that can be encoded as UTF-8") from None
        if "\x00" in arg:
            raise ConfigError(field, arg, "an argument without NUL characters (no process can receive one)")
        if size > MAX_ARG_BYTES:
            raise ConfigError(
                field, f"{arg[:40]}… ({size} bytes)", f"at most {MAX_ARG_BYTES} bytes: Linux's limit for one argument (MAX_ARG_STRLEN)", "Pass large values in a file"
            )
    if payload_bytes > MAX_ARG_BYTES:
        raise ConfigError(
            "trial CustomJob",
            f"{payload_bytes} bytes",
            f"at most {MAX_ARG_BYTES} bytes: gcpc's launcher receives the whole CustomJob (arguments, environment, "
            "settings) as one argument, and Linux's limit for one argument is 128 KiB",
            "Pass large values in a file",
        )
