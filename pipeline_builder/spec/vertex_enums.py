"""Vertex enum values that settings are checked against, without importing aiplatform.

Importing ``google.cloud.aiplatform_v1`` costs about a second, too much for compile mode,
so the names are kept here; ``tests/test_vertex_enums.py`` fails when they drift from the
installed google-cloud-aiplatform. A name missing here is looked up in the installed SDK
before it is rejected, so a newer SDK's new accelerator still works.
"""

from typing import FrozenSet

# google.cloud.aiplatform_v1.types.AcceleratorType, less ACCELERATOR_TYPE_UNSPECIFIED.
ACCELERATOR_TYPES: FrozenSet[str] = frozenset(
    {
        "NVIDIA_TESLA_K80",
        "NVIDIA_TESLA_P100",
        "NVIDIA_TESLA_V100",
        "NVIDIA_TESLA_P4",
        "NVIDIA_TESLA_T4",
        "NVIDIA_TESLA_A100",
        "NVIDIA_A100_80GB",
        "NVIDIA_L4",
        "NVIDIA_H100_80GB",
        "NVIDIA_H100_MEGA_80GB",
        "NVIDIA_H200_141GB",
        "NVIDIA_B200",
        "NVIDIA_GB200",
        "NVIDIA_RTX_PRO_6000",
        "TPU_V2",
        "TPU_V3",
        "TPU_V4_POD",
        "TPU_V5_LITEPOD",
    }
)

# google.cloud.aiplatform_v1.types.Scheduling.Strategy values that
# CustomTrainingJobOp's `strategy` input documents (ON_DEMAND and LOW_COST are deprecated).
STRATEGIES: FrozenSet[str] = frozenset({"STANDARD", "SPOT", "FLEX_START"})

# google.cloud.aiplatform_v1.types.DiskSpec.boot_disk_type is a string; its docs list these.
BOOT_DISK_TYPES: FrozenSet[str] = frozenset({"pd-ssd", "pd-standard", "hyperdisk-balanced"})


def installed_accelerator_types() -> FrozenSet[str]:
    """The installed SDK's accelerator names (slow: imports aiplatform_v1)."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    return frozenset(m.name for m in AcceleratorType.__members__.values() if m.value != 0)


def is_accelerator_type(name: str) -> bool:
    if name in ACCELERATOR_TYPES:
        return True
    if not name.replace("_", "").isalnum() or not name.isupper():
        return False
    try:
        return name in installed_accelerator_types()
    except ImportError:  # pragma: no cover - aiplatform is a dependency
        return False
