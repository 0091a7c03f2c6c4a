"""The enum names kept in pipeline_builder match the installed google-cloud-aiplatform."""

from google.cloud.aiplatform_v1.types import AcceleratorType, DiskSpec, Scheduling

from hydra_vertex_pipelines.pipeline_builder.spec import vertex_enums


def test_accelerator_types_match_the_sdk():
    assert vertex_enums.ACCELERATOR_TYPES == vertex_enums.installed_accelerator_types()
    assert vertex_enums.installed_accelerator_types() == {m.name for m in AcceleratorType if m.value}


def test_strategies_are_sdk_strategies():
    assert vertex_enums.STRATEGIES <= {m.name for m in Scheduling.Strategy}


def test_boot_disk_types_are_the_documented_ones():
    doc = DiskSpec.__doc__
    for disk_type in vertex_enums.BOOT_DISK_TYPES:
        assert f'"{disk_type}"' in doc


def test_unknown_names_are_looked_up_in_the_sdk():
    assert vertex_enums.is_accelerator_type("NVIDIA_TESLA_T4")
    assert not vertex_enums.is_accelerator_type("NVIDIA_GTX_1080")
    assert not vertex_enums.is_accelerator_type("nvidia-t4")
    assert not vertex_enums.is_accelerator_type("ACCELERATOR_TYPE_UNSPECIFIED")
