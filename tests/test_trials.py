"""Trial specs are plain data whose worker pools Vertex's protos accept."""

from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJobSpec, WorkerPoolSpec
from google.protobuf import json_format

from pipeline_builder.settings import TrialSettings
from pipeline_builder.trials import build_trial, gcs_to_fuse, trial_rows

import pytest


def make(settings: TrialSettings, **kw):
    args = dict(
        number=7,
        job_id="run_7",
        overrides=["lr=0.1", "model=big"],
        settings=settings,
        command=["python", "train.py"],
        args=["lr=0.1", "model=big", "hydra.run.dir=/gcs/b/r/7"],
        output_uri="gs://b/r/7",
        name_prefix="train",
        labels={"hydra-trial": "7"},
    )
    dict.update(args, kw)
    return build_trial(**args)


def as_proto(pool):
    return json_format.ParseDict(pool, WorkerPoolSpec.pb(WorkerPoolSpec()))


def test_gcs_to_fuse():
    assert gcs_to_fuse("gs://bucket/a/b") == "/gcs/bucket/a/b"
    with pytest.raises(ValueError):
        gcs_to_fuse("/tmp/x")


def test_single_replica_gpu_trial():
    trial = make(
        TrialSettings(
            image_uri="img:1",
            machine_type="a2-highgpu-1g",
            accelerator_type="NVIDIA_TESLA_A100",
            accelerator_count=1,
            env={"A": "1", "B": 2},
            boot_disk_type="pd-standard",
            boot_disk_size_gb=200,
        )
    )
    (pool,) = trial.worker_pool_specs
    message = as_proto(pool)
    assert message.machine_spec.accelerator_type == AcceleratorType.NVIDIA_TESLA_A100
    assert message.machine_spec.accelerator_count == 1
    assert message.replica_count == 1
    assert list(message.container_spec.command) == ["python", "train.py"]
    assert list(message.container_spec.args) == ["lr=0.1", "model=big", "hydra.run.dir=/gcs/b/r/7"]
    assert {e.name: e.value for e in message.container_spec.env} == {"A": "1", "B": "2"}
    assert message.disk_spec.boot_disk_type == "pd-standard"
    assert message.disk_spec.boot_disk_size_gb == 200
    assert trial.output_dir == "/gcs/b/r/7"
    assert trial.result_path == "/gcs/b/r/7/result.json"
    assert trial.display_name == "train-7 lr=0.1 model=big"


def test_replica_count_becomes_chief_plus_workers():
    trial = make(TrialSettings(image_uri="img", replica_count=4))
    chief, workers = (as_proto(p) for p in trial.worker_pool_specs)
    assert chief.replica_count == 1 and workers.replica_count == 3
    assert chief.container_spec == workers.container_spec
    spec = json_format.ParseDict({"worker_pool_specs": list(trial.worker_pool_specs)}, CustomJobSpec.pb(CustomJobSpec()))
    assert len(spec.worker_pool_specs) == 2


def test_custom_job_inputs_carry_job_settings():
    trial = make(
        TrialSettings(
            image_uri="img",
            timeout="2h",
            strategy="SPOT",
            restart_job_on_worker_restart=True,
            service_account="sa@p.iam.gserviceaccount.com",
            network="projects/1/global/networks/vpc",
            reserved_ip_ranges=["range-a"],
            tensorboard="projects/1/locations/us-central1/tensorboards/2",
            encryption_spec_key_name="projects/p/locations/l/keyRings/r/cryptoKeys/k",
            max_wait_duration="30m",
        )
    )
    inputs = trial.custom_job_inputs()
    assert inputs["timeout"] == "7200s"
    assert inputs["max_wait_duration"] == "1800s"
    assert inputs["strategy"] == "SPOT"
    assert inputs["restart_job_on_worker_restart"] is True
    assert inputs["service_account"] == "sa@p.iam.gserviceaccount.com"
    assert inputs["network"] == "projects/1/global/networks/vpc"
    assert inputs["reserved_ip_ranges"] == ["range-a"]
    assert inputs["tensorboard"].endswith("tensorboards/2")
    assert inputs["encryption_spec_key_name"].endswith("cryptoKeys/k")
    assert inputs["base_output_directory"] == "gs://b/r/7"
    assert inputs["labels"] == {"hydra-trial": "7"}


def test_unset_settings_keep_vertex_defaults():
    inputs = make(TrialSettings(image_uri="img")).custom_job_inputs()
    for key in ("timeout", "service_account", "network", "tensorboard", "reserved_ip_ranges", "max_wait_duration"):
        assert key not in inputs


def test_custom_display_name_prefix_and_no_overrides():
    trial = make(TrialSettings(image_uri="img", display_name="exp42"), overrides=[])
    assert trial.display_name == "exp42-7 (no overrides)"


def test_trial_rows_are_small():
    assert trial_rows([make(TrialSettings(image_uri="img"))]) == [
        {"number": 7, "overrides": ["lr=0.1", "model=big"], "output_dir": "/gcs/b/r/7"}
    ]
