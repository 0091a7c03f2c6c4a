"""A trial's worker pools as Vertex accepts them: machines, accelerators, boot disks,
replicas, and the pool layout gcpc's launcher keeps intact."""

import difflib
import re
from typing import Any, Optional

from ..errors import ConfigError
from . import vertex_enums
from .settings import TrialSettings
from .values import check_count, check_env, check_one_of

_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*$")


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


def check_worker_pools(s: TrialSettings, field: str) -> None:
    """The chief's machine and replicas, then each extra pool; `field` is the settings' prefix."""
    if not isinstance(s.machine_type, str) or not _MACHINE_TYPE.match(s.machine_type):
        raise ConfigError(
            f"{field}.machine_type",
            s.machine_type,
            "a Compute Engine machine type such as n1-standard-4 or a2-highgpu-1g",
        )
    check_count(s.replica_count, f"{field}.replica_count", 1)
    _check_machine(s.accelerator_type, s.accelerator_count, s.boot_disk_type, s.boot_disk_size_gb, field)
    _check_pools(s, field)


def _check_machine(
    accelerator_type: Optional[str], accelerator_count: Any, disk_type: Optional[str], disk_size: Any, field: str
) -> None:
    check_count(accelerator_count, f"{field}.accelerator_count", 0)
    if disk_size is not None:
        check_count(disk_size, f"{field}.boot_disk_size_gb", 1)
    if accelerator_type is None:
        if accelerator_count > 0:
            raise ConfigError(
                f"{field}.accelerator_type",
                None,
                f"an accelerator type when accelerator_count={accelerator_count}, e.g. NVIDIA_TESLA_T4",
            )
    else:
        if not vertex_enums.is_accelerator_type(accelerator_type):
            check_one_of(
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
        check_one_of(disk_type, f"{field}.boot_disk_type", vertex_enums.BOOT_DISK_TYPES, lower.get(str(disk_type).lower()))


def _check_pools(s: TrialSettings, field: str) -> None:
    """Extra worker pools: each checked like the chief; pool positions must not clash."""
    for name in ("workers", "parameter_servers", "reduction_server"):
        pool, where = getattr(s, name), f"{field}.{name}"
        check_count(pool.replica_count, f"{where}.replica_count", 0)
        if pool.machine_type is not None and (
            not isinstance(pool.machine_type, str) or not _MACHINE_TYPE.match(pool.machine_type)
        ):
            raise ConfigError(
                f"{where}.machine_type", pool.machine_type, "null (the chief's) or a machine type such as n1-standard-8"
            )
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
            raise ConfigError(
                f"{where}.command", pool.command, "null (the chief's command) or a non-empty list of non-empty strings"
            )
        if pool.args and pool.command is None:
            raise ConfigError(
                f"{where}.args", list(pool.args), f"empty unless {where}.command is set (else the pool runs the chief's command)"
            )
        check_env(pool.env, f"{where}.env")
    _check_pool_layout(s, field)


def _check_pool_layout(s: TrialSettings, field: str) -> None:
    """Pools 1 and 2 as Vertex and gcpc's launcher take them."""
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
