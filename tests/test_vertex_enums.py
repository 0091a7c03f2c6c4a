"""The Vertex enum names kept in pipeline_builder, checked against google-cloud-aiplatform's
own types, and the SDK lookup that accepts names the kept list lacks."""

import pytest
from google.cloud.aiplatform_v1.types import AcceleratorType, DiskSpec, Scheduling

from hydra_vertex_pipelines.pipeline_builder.spec import vertex_enums

UNSPECIFIED = AcceleratorType.ACCELERATOR_TYPE_UNSPECIFIED


def test_every_kept_accelerator_is_an_sdk_accelerator():
    for name in vertex_enums.ACCELERATOR_TYPES:
        assert AcceleratorType[name] != UNSPECIFIED


@pytest.mark.parametrize("member", [m for m in AcceleratorType if m != UNSPECIFIED], ids=lambda m: m.name)
def test_every_sdk_accelerator_is_kept(member):
    assert member.name in vertex_enums.ACCELERATOR_TYPES


def test_the_kept_list_and_the_sdk_lookup_agree():
    assert vertex_enums.installed_accelerator_types() == vertex_enums.ACCELERATOR_TYPES


def test_a_name_the_kept_list_lacks_is_found_in_the_sdk(monkeypatch):
    """A newer SDK's accelerator works before the kept list learns it."""
    monkeypatch.setattr(vertex_enums, "ACCELERATOR_TYPES", vertex_enums.ACCELERATOR_TYPES - {"NVIDIA_L4"})
    assert vertex_enums.is_accelerator_type(AcceleratorType.NVIDIA_L4.name)


@pytest.mark.parametrize("name", ["NVIDIA_GTX_1080", UNSPECIFIED.name])
def test_a_name_neither_knows_is_refused(name):
    assert not vertex_enums.is_accelerator_type(name)


@pytest.mark.parametrize("name", ["nvidia-t4", "NVIDIA T4", "Nvidia_Tesla_T4", ""])
def test_a_name_no_enum_member_can_have_is_refused_without_the_sdk(name, monkeypatch):
    """The SDK takes about a second to import: a name that cannot be an enum name does not wait for it."""

    def no_sdk():
        raise AssertionError("the SDK was consulted")

    monkeypatch.setattr(vertex_enums, "installed_accelerator_types", no_sdk)
    assert not vertex_enums.is_accelerator_type(name)


def test_strategies_are_sdk_strategies():
    for name in vertex_enums.STRATEGIES:
        assert Scheduling.Strategy[name] != Scheduling.Strategy.STRATEGY_UNSPECIFIED


def test_boot_disk_types_are_the_documented_ones():
    doc = DiskSpec.__doc__
    for disk_type in vertex_enums.BOOT_DISK_TYPES:
        assert f'"{disk_type}"' in doc
