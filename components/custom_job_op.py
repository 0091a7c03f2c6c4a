"""CustomTrainingJobOp with one more scheduling input: `disable_retries`.

google-cloud-pipeline-components' CustomTrainingJobOp builds the CustomJob payload without
`scheduling.disable_retries`, Vertex's switch for its own restart of jobs that fail on an
internal error. This component is the same container (gcpc's CustomJob launcher) with the
same inputs and that one field more; the pipeline builder uses it only for trials that set
it, so every other trial stays a plain CustomTrainingJobOp.
"""

from typing import Dict, List, Union

from google_cloud_pipeline_components import _placeholders, utils
from kfp import dsl


@dsl.container_component
def custom_training_job_no_vertex_retries(
    display_name: str,
    gcp_resources: dsl.OutputPath(str),  # type: ignore[valid-type]  # kfp spells an output path as a call, as gcpc does
    location: str = _placeholders.LOCATION_PLACEHOLDER,
    worker_pool_specs: List[Dict[str, str]] = [],  # noqa: B006 (kfp reads defaults from the signature)
    timeout: str = "604800s",
    restart_job_on_worker_restart: bool = False,
    service_account: str = "",
    tensorboard: str = "",
    enable_web_access: bool = False,
    network: str = "",
    reserved_ip_ranges: List[str] = [],  # noqa: B006 (kfp reads defaults from the signature)
    base_output_directory: str = "",
    labels: Dict[str, str] = {},  # noqa: B006 (kfp reads defaults from the signature)
    encryption_spec_key_name: str = "",
    persistent_resource_id: str = _placeholders.PERSISTENT_RESOURCE_ID_PLACEHOLDER,
    project: str = _placeholders.PROJECT_ID_PLACEHOLDER,
    strategy: str = "STANDARD",
    max_wait_duration: str = "86400s",
    psc_interface_config: Dict[str, Union[str, List[Dict[str, str]]]] = {},  # noqa: B006 (kfp reads defaults from the signature)
    disable_retries: bool = False,
):
    """Launch a Vertex CustomJob, as CustomTrainingJobOp does, with `disable_retries`."""
    return utils.build_serverless_customjob_container_spec(
        project=project,
        location=location,
        custom_job_payload={
            "display_name": display_name,
            "job_spec": {
                "worker_pool_specs": worker_pool_specs,
                "scheduling": {
                    "timeout": timeout,
                    "restart_job_on_worker_restart": restart_job_on_worker_restart,
                    "strategy": strategy,
                    "max_wait_duration": max_wait_duration,
                    "disable_retries": disable_retries,
                },
                "service_account": service_account,
                "tensorboard": tensorboard,
                "enable_web_access": enable_web_access,
                "network": network,
                "reserved_ip_ranges": reserved_ip_ranges,
                "base_output_directory": {"output_uri_prefix": base_output_directory},
                "persistent_resource_id": persistent_resource_id,
                "psc_interface_config": psc_interface_config,
            },
            "labels": labels,
            "encryption_spec": {"kms_key_name": encryption_spec_key_name},
        },
        gcp_resources=gcp_resources,
    )
