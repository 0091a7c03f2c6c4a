"""Checks of trial and pipeline settings, run before anything is written or sent."""

import difflib
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from hydra_vertex_pipelines.components.machine_hours import SHAPES, machine_shape

from ..errors import ConfigError
from . import vertex_enums
from .names import MAX_DISPLAY_NAME, check_labels, is_display_name
from .settings import FALLBACK_KEYS, FALLBACK_POOL_KEYS, Code, Entry, TrialSettings, fallback_variants
from .values import check_count, check_env, check_gcs_uri, check_one_of, duration
from .worker_pools import check_worker_pools

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
ENTRIES = tuple(e.value for e in Entry)
MAX_PARALLELISM = 2**31 - 1  # PipelineTaskSpec.IteratorPolicy.parallelism_limit is an int32
# Linux's MAX_ARG_STRLEN: one argument (or environment string) of at most 32 pages,
# its terminating NUL included. gcpc's launcher gets the whole CustomJob as one argument.
MAX_ARG_BYTES = 32 * 4096 - 1


def check_trial_settings(s: TrialSettings, field: str, require_image: bool = True) -> None:
    """Raises ConfigError for the first setting Vertex would reject; `field` is its prefix."""
    check_one_of(s.code, f"{field}.code", CODE_MODES)
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
    check_one_of(s.entry, f"{field}.entry", ENTRIES)
    if s.command is not None:
        if len(s.command) == 0 or not all(isinstance(a, str) and a for a in s.command):
            raise ConfigError(f"{field}.command", s.command, "null (re-run the app) or a non-empty list of non-empty strings")
    if not isinstance(s.python, str) or not s.python.strip():
        raise ConfigError(f"{field}.python", s.python, "the interpreter's name or path in the image, e.g. python")
    check_worker_pools(s, field)
    _check_built_in_accelerators(s, field)
    upper = str(s.strategy).upper().replace("-", "_")
    check_one_of(s.strategy, f"{field}.strategy", vertex_enums.STRATEGIES, upper if upper in vertex_enums.STRATEGIES else None)
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
    check_env(s.env, f"{field}.env")
    _check_placement(s, field)
    if s.base_output_dir is not None:
        check_gcs_uri(s.base_output_dir, f"{field}.base_output_dir")
    check_labels(s.labels, f"{field}.labels")
    check_fallbacks(s, field, require_image)


# Accelerators that come built into their machines (a2, a3, g2): machine_hours' one table.
BUILT_IN_ACCELERATORS = {shape.accelerator_type for shape in SHAPES.values() if shape.accelerator_type}


def _check_built_in_accelerators(s: TrialSettings, field: str) -> None:
    """A machine with built-in GPUs takes exactly those (Vertex's machine_spec names them),
    and those GPUs come on no other machine of the table: a fallback from L4s to T4s must
    change the machine too. A machine type the table does not know is left to Vertex."""
    machines = [(field, s.machine_type, s.accelerator_type, s.accelerator_count)]
    for name in ("workers", "parameter_servers"):
        pool = getattr(s, name)
        if pool.replica_count and pool.machine_type is not None:
            machines.append((f"{field}.{name}", pool.machine_type, pool.accelerator_type, pool.accelerator_count))
    for where, machine, accelerator, count in machines:
        shape = machine_shape(machine)
        if shape is None:
            continue
        if shape.accelerator_type and (accelerator, count) != (shape.accelerator_type, shape.accelerator_count):
            raise ConfigError(
                f"{where}.accelerator_type",
                accelerator,
                f"{shape.accelerator_type} with accelerator_count={shape.accelerator_count}: "
                f"the GPUs built into {where}.machine_type={machine}",
            )
        if not shape.accelerator_type and accelerator in BUILT_IN_ACCELERATORS:
            hosts = sorted(m for m, sh in SHAPES.items() if sh.accelerator_type == accelerator)
            raise ConfigError(
                f"{where}.machine_type",
                machine,
                f"a machine that comes with {accelerator}: {', '.join(hosts)}",
                f"{accelerator} is built into those machines; {machine} takes none",
            )


def check_fallbacks(s: TrialSettings, field: str, require_image: bool = True) -> None:
    """Each fallback names only settings a fallback may change, and the settings it makes
    (on top of the trial's own and the fallbacks before it) pass every check the trial's own do."""
    fallbacks = s.fallbacks
    where = f"{field}.fallbacks"
    if not isinstance(fallbacks, (list, tuple)):
        raise ConfigError(where, fallbacks, "a list of partial trial settings, e.g. [{strategy: STANDARD}]")
    for i, partial in enumerate(fallbacks):
        _check_fallback_keys(partial, f"{where}[{i}]", FALLBACK_KEYS)
        for pool in ("workers", "parameter_servers"):
            if pool in partial:
                _check_fallback_keys(partial[pool], f"{where}[{i}].{pool}", FALLBACK_POOL_KEYS)
    for i, (_, merged) in enumerate(fallback_variants(s)):
        check_trial_settings(merged, f"{where}[{i}]", require_image)


def _check_fallback_keys(partial: Any, where: str, accepted: Sequence[str]) -> None:
    if not isinstance(partial, Mapping) or not partial:
        raise ConfigError(where, partial, f"a mapping of settings to change, among {', '.join(accepted)}")
    for key, value in partial.items():
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            why: Optional[str] = f"Did you mean {close[0]}?" if close else None
            if why is None and key in TrialSettings.__dataclass_fields__:
                why = "A fallback changes where and on what the trial runs, not what it runs or its replica count"
            raise ConfigError(f"{where}.{key}", value, f"a setting a fallback may change: {', '.join(accepted)}", why or "")


def _check_retries(s: TrialSettings, field: str) -> None:
    if not isinstance(s.disable_retries, bool):
        raise ConfigError(f"{field}.disable_retries", s.disable_retries, "true or false")
    check_count(s.retries, f"{field}.retries", 0)
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
                f"{field}.psc_interface_config",
                "<set>",
                f"unset when {field}.network is set: a job uses VPC peering or a PSC interface, not both",
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
        raise ConfigError(
            f"{field}.service_account", service_account, "a service account email, NAME@PROJECT.iam.gserviceaccount.com"
        )
    if network is not None and not (isinstance(network, str) and _NETWORK.match(network)):
        raise ConfigError(f"{field}.network", network, "projects/PROJECT_NUMBER/global/networks/NETWORK")
    for name in ranges:
        if not isinstance(name, str) or not _IP_RANGE_NAME.match(name):
            raise ConfigError(
                f"{field}.reserved_ip_ranges", name, "names of reserved IP ranges of the network, e.g. vertex-ai-range"
            )
    if ranges and network is None:
        raise ConfigError(f"{field}.network", None, f"a network when {field}.reserved_ip_ranges is set (the ranges belong to it)")


def _check_psc(config: Any, field: str) -> None:
    if not isinstance(config, dict) or set(config) - PSC_INTERFACE_FIELDS:
        unknown = sorted(set(config) - PSC_INTERFACE_FIELDS) if isinstance(config, dict) else config
        raise ConfigError(field, unknown, "a mapping with " + " and ".join(sorted(PSC_INTERFACE_FIELDS)))
    attachment = config.get("network_attachment")
    if not isinstance(attachment, str) or not _NETWORK_ATTACHMENT.match(attachment):
        raise ConfigError(
            f"{field}.network_attachment",
            attachment,
            "a network attachment: NAME or projects/PROJECT/regions/REGION/networkAttachments/NAME",
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
        raise ConfigError(
            f"{field}.command", s.command, f"null when {field}.code=package (the trial runs python -m {where}.python_module)"
        )


def check_kms_key(key: Any, location: str, field: str) -> None:
    """A CMEK key, in the region of the resources it protects."""
    match = _KMS_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        raise ConfigError(field, key, "a Cloud KMS key: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY")
    if match.group(1) != location:
        raise ConfigError(field, key, f"a key in location {location} (the pipeline's location); this one is in {match.group(1)}")


# Keys of `hydra.launcher` that check_launcher_settings reads.
LAUNCHER_SETTINGS = (
    "service_account",
    "network",
    "reserved_ip_ranges",
    "collector_image",
    "display_name",
    "max_parallel",
    "experiment",
)


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
    if name is not None and not (isinstance(name, str) and is_display_name(name)):
        raise ConfigError(
            f"{field}.display_name",
            name,
            f"null (the run id) or at most {MAX_DISPLAY_NAME} characters without control characters",
        )
    limit = settings.get("max_parallel")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PARALLELISM):
        raise ConfigError(
            f"{field}.max_parallel",
            limit,
            f"null or a whole number from 1 to {MAX_PARALLELISM} (a pipeline loop's int32 parallelism limit)",
        )
    experiment = settings.get("experiment")
    if experiment is not None and not (isinstance(experiment, str) and _EXPERIMENT.match(experiment)):
        raise ConfigError(
            f"{field}.experiment",
            experiment,
            "an experiment name: 1-128 lowercase letters, digits and '-', starting with a letter or digit",
        )


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
                field,
                f"{arg[:40]}… ({size} bytes)",
                f"at most {MAX_ARG_BYTES} bytes: Linux's limit for one argument (MAX_ARG_STRLEN)",
                "Pass large values in a file",
            )
    if payload_bytes > MAX_ARG_BYTES:
        raise ConfigError(
            "trial CustomJob",
            f"{payload_bytes} bytes",
            f"at most {MAX_ARG_BYTES} bytes: gcpc's launcher receives the whole CustomJob (arguments, environment, "
            "settings) as one argument, and Linux's limit for one argument is 128 KiB",
            "Pass large values in a file",
        )
