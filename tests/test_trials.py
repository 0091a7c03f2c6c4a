"""Trial specs are plain data whose worker pools Vertex's protos accept."""

import pytest
from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJobSpec, WorkerPoolSpec
from google.protobuf import json_format

from hydra_vertex_pipelines.components.sweep_files import gcs_to_fuse
from hydra_vertex_pipelines.pipeline_builder.spec import TrialSettings, WorkerPoolSettings, build_trial, trial_rows


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
    assert trial.result_path == "/gcs/b/r/7/.vertex/result.json"
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
        {
            "number": 7,
            "overrides": ["lr=0.1", "model=big"],
            "output_dir": "/gcs/b/r/7",
            "machines": [{"machine_type": "n1-standard-4", "replica_count": 1}],  # what its machine-hours count
            "strategy": "STANDARD",
        }
    ]


def _through_gcpc(pools):
    """The worker pools as gcpc's launcher sends them: it drops every empty value."""
    import json

    from google_cloud_pipeline_components.container.v1.gcp_launcher.utils import json_util

    return json_util.recursive_remove_empty({"job_spec": {"worker_pool_specs": json.loads(json.dumps(list(pools)))}})["job_spec"][
        "worker_pool_specs"
    ]


def test_gcpc_would_shift_a_pool_after_an_empty_one():
    """Why pool 2 needs workers: an empty pool 1 (`{}`, as Vertex documents it, and
    replica_count 0, an empty value too) vanishes, and pool 2 moves into pool 1."""
    chief, ps = (
        {"replica_count": 1, "container_spec": {"image_uri": "a"}},
        {"replica_count": 1, "container_spec": {"image_uri": "ps"}},
    )
    assert _through_gcpc([chief, {}, ps]) == [chief, ps]
    assert _through_gcpc([chief, {"replica_count": 0}, ps]) == [chief, ps]


@pytest.mark.parametrize(
    "settings",
    [
        TrialSettings(
            image_uri="img", workers=WorkerPoolSettings(replica_count=1), parameter_servers=WorkerPoolSettings(replica_count=2)
        ),
        TrialSettings(image_uri="img", replica_count=3, reduction_server=WorkerPoolSettings(replica_count=1)),
    ],
)
def test_every_pool_survives_gcpc_in_its_place(settings):
    trial = make(settings)
    assert _through_gcpc(trial.worker_pool_specs) == [_without_empty(p) for p in trial.worker_pool_specs]
    assert len(_through_gcpc(trial.worker_pool_specs)) == 3


def _without_empty(pool):
    if isinstance(pool, dict):
        return {k: _without_empty(v) for k, v in pool.items() if v}
    return pool


def test_pool_two_without_workers_is_never_laid_out():
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import worker_pool_specs

    with pytest.raises(ValueError, match="needs workers in pool 1"):
        worker_pool_specs(
            TrialSettings(image_uri="img", parameter_servers=WorkerPoolSettings(replica_count=1)), ["python", "t.py"], []
        )


def test_an_argument_over_linux_limit_is_refused_with_the_trial_named():
    from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError

    big = "+blob=" + "x" * 131072
    with pytest.raises(ConfigError) as e:
        make(TrialSettings(image_uri="img"), overrides=["lr=0.1", big], args=["lr=0.1", big])
    message = str(e.value)
    assert message.startswith("override='+blob=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (131078 bytes)' (trial 7: lr=0.1 +blob=xxxx")
    assert "is not accepted: at most 131071 bytes: Linux's limit for one argument (MAX_ARG_STRLEN)" in message
    assert len(message) < 400


def test_a_custom_job_over_linux_limit_is_refused():
    """gcpc's launcher gets the whole CustomJob as one argument: many large values that each
    fit still make a payload no container can be started with."""
    from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError

    overrides = [f"+v{i}=" + "x" * 20000 for i in range(7)]
    with pytest.raises(ConfigError, match=r"trial CustomJob='1\d{5} bytes' \(trial 7: \+v0=x+…"):
        make(TrialSettings(image_uri="img"), overrides=overrides, args=overrides)
    make(TrialSettings(image_uri="img"), overrides=overrides[:5], args=overrides[:5])


def test_display_name_of_a_trial_is_safe():
    trial = make(TrialSettings(image_uri="img", display_name='my "exp"'), overrides=['+msg="a b"', "+p=C\\:\\\\x"])
    assert trial.display_name == "my 'exp'-7 +msg='a b' +p=C/://x"
