from dataclasses import replace

import pytest

from pipeline_builder.errors import ConfigError
from pipeline_builder.settings import PackageSettings, TrialSettings, WorkerPoolSettings
from pipeline_builder.validation import check_gcs_uri, check_trial_settings, duration, suggest_accelerator

OK = TrialSettings(image_uri="us-docker.pkg.dev/p/r/i:1")


def test_defaults_with_an_image_are_valid():
    check_trial_settings(OK, "trial")


def test_image_is_optional_only_when_not_required():
    check_trial_settings(TrialSettings(), "trial", require_image=False)
    with pytest.raises(ConfigError, match="trial.image_uri=None"):
        check_trial_settings(TrialSettings(), "trial")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("nvidia-t4", "NVIDIA_TESLA_T4"),
        ("t4", "NVIDIA_TESLA_T4"),
        ("nvidia_tesla_v100", "NVIDIA_TESLA_V100"),
        ("a100", "NVIDIA_A100_80GB or NVIDIA_TESLA_A100"),
        ("h100", "NVIDIA_H100_80GB or NVIDIA_H100_MEGA_80GB"),
        ("NVIDIA_L4_GPU", "NVIDIA_L4"),
        ("tpu-v3", "TPU_V3"),
        ("zzz", None),
    ],
)
def test_accelerator_suggestions(value, expected):
    assert suggest_accelerator(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [(3600, "3600s"), ("3600s", "3600s"), ("90m", "5400s"), ("1.5h", "5400s"), ("7d", "604800s"), ("0.5s", "0.5s")],
)
def test_durations(value, expected):
    assert duration(value, "t") == expected


@pytest.mark.parametrize("value", ["soon", "-5s", "0", "1w", True, "3600 seconds"])
def test_bad_durations(value):
    with pytest.raises(ConfigError, match="a positive duration"):
        duration(value, "t")


@pytest.mark.parametrize(
    "uri", ["gs://bucket", "gs://my-bucket/a/b", "gs://b.example.com/x=1,y=2/", "gs://bkt/with+plus@at"]
)
def test_good_gcs_uris(uri):
    assert check_gcs_uri(uri, "f") == uri.rstrip("/")


@pytest.mark.parametrize(
    "uri", ["bucket/x", "gs://", "gs://B", "gs://Bucket/x", "gs://bucket/a b", "gs://bucket/$x", "/gcs/bucket", None]
)
def test_bad_gcs_uris(uri):
    with pytest.raises(ConfigError, match="gs://BUCKET"):
        check_gcs_uri(uri, "f")


@pytest.mark.parametrize(
    "change,field,accepted",
    [
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, "trial.accelerator_count", "a whole number >= 1 when"),
        ({"accelerator_count": True}, "trial.accelerator_count", "a whole number >= 0"),
        ({"machine_type": "N1 standard"}, "trial.machine_type", "a Compute Engine machine type"),
        ({"command": []}, "trial.command", "non-empty list"),
        ({"command": ["python", ""]}, "trial.command", "non-empty list"),
        ({"python": " "}, "trial.python", "the interpreter"),
        ({"image_uri": "my image"}, "trial.image_uri", "without spaces"),
        ({"env": {"1BAD": "x"}}, "trial.env key", "a variable name"),
        ({"env": {"DB_PASSWORD": "hunter2"}}, "trial.env.DB_PASSWORD", "no secrets"),
        ({"env": {"HF_TOKEN": "x"}}, "trial.env.HF_TOKEN", "no secrets"),
        ({"service_account": "trainer"}, "trial.service_account", "a service account email"),
        ({"network": "my-vpc"}, "trial.network", "projects/PROJECT_NUMBER/global/networks/NETWORK"),
        ({"base_output_dir": "/tmp/out"}, "trial.base_output_dir", "gs://BUCKET"),
        ({"max_wait_duration": "later"}, "trial.max_wait_duration", "a positive duration"),
    ],
)
def test_rules(change, field, accepted):
    with pytest.raises(ConfigError) as e:
        check_trial_settings(replace(OK, **change), "trial")
    assert e.value.field == field
    assert accepted in str(e.value)
    assert "hunter2" not in str(e.value)


def test_error_says_where_the_setting_came_from():
    err = ConfigError("trial.strategy", "CHEAP", "one of SPOT").at("trial 3: lr=1")
    assert str(err) == "trial.strategy='CHEAP' (trial 3: lr=1) is not accepted: one of SPOT"


W = WorkerPoolSettings
BAD_SETTINGS = [
    (dict(code="docker"), "trial.code='docker' is not accepted: one of image, package"),
    (dict(code="package"), "trial.package.executor_image_uri=None is not accepted: a Vertex prebuilt training image"),
    (dict(code="package", package=PackageSettings(executor_image_uri="img", python_module="trainer/task.py")), "trial.package.python_module='trainer/task.py' is not accepted: a dotted module name"),
    (dict(code="package", command=["python", "x.py"], package=PackageSettings(executor_image_uri="img")), "trial.command=['python', 'x.py'] is not accepted: null when trial.code=package"),
    (dict(workers=W(replica_count=-1)), "trial.workers.replica_count=-1 is not accepted: a whole number >= 0"),
    (dict(workers=W(replica_count=1, machine_type="N1 Standard")), "trial.workers.machine_type='N1 Standard' is not accepted"),
    (dict(workers=W(replica_count=1, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1)), "trial.workers.accelerator_type='NVIDIA_TESLA_T4' is not accepted: null while trial.workers.machine_type is null"),
    (dict(workers=W(replica_count=1, machine_type="n1-standard-8", accelerator_type="nvidia-t4", accelerator_count=1)), "Did you mean NVIDIA_TESLA_T4?"),
    (dict(workers=W(replica_count=1, boot_disk_type="ssd")), "trial.workers.boot_disk_type='ssd' is not accepted: one of hyperdisk-balanced, pd-ssd, pd-standard"),
    (dict(workers=W(replica_count=1, image_uri="my image")), "trial.workers.image_uri='my image' is not accepted"),
    (dict(workers=W(replica_count=1, command=[])), "trial.workers.command=[] is not accepted"),
    (dict(workers=W(replica_count=1, args=["--x"])), "trial.workers.args=['--x'] is not accepted: empty unless trial.workers.command is set"),
    (dict(workers=W(replica_count=1, env={"API_TOKEN": "x"})), "trial.workers.env.API_TOKEN='<hidden>' is not accepted: no secrets"),
    (dict(replica_count=3, workers=W(replica_count=2)), "trial.replica_count=3 is not accepted: 1 when trial.workers.replica_count is set"),
    (dict(parameter_servers=W(replica_count=1), reduction_server=W(replica_count=1)), "trial.reduction_server.replica_count=1 is not accepted: 0 when trial.parameter_servers are set"),
    (dict(max_wait_duration="1h"), "trial.max_wait_duration='1h' is not accepted: null unless strategy is FLEX_START"),
    (dict(disable_retries="yes"), "trial.disable_retries='yes' is not accepted: true or false"),
    (dict(retries=-1), "trial.retries=-1 is not accepted: a whole number >= 0"),
    (dict(retries=2, retry_backoff="soon"), "trial.retry_backoff='soon' is not accepted: a positive duration"),
    (dict(retries=2, retry_backoff="1.5s"), "trial.retry_backoff='1.5s' is not accepted: a whole number of seconds"),
    (dict(retries=2, retry_backoff_factor=0.5), "trial.retry_backoff_factor=0.5 is not accepted: a number >= 1"),
    (dict(reserved_ip_ranges=["Range 1"]), "trial.reserved_ip_ranges='Range 1' is not accepted: names of reserved IP ranges"),
    (dict(reserved_ip_ranges=["vertex-range"]), "trial.network=None is not accepted: a network when trial.reserved_ip_ranges is set"),
    (dict(psc_interface_config={"attachment": "na"}), "trial.psc_interface_config=['attachment'] is not accepted: a mapping with dns_peering_configs and network_attachment"),
    (dict(psc_interface_config={"network_attachment": "projects/p/na"}), "trial.psc_interface_config.network_attachment='projects/p/na' is not accepted: a network attachment"),
    (dict(psc_interface_config={"network_attachment": "na", "dns_peering_configs": [{"target_project": "p"}]}), "trial.psc_interface_config.dns_peering_configs={'target_project': 'p'} is not accepted"),
    (dict(psc_interface_config={"network_attachment": "na"}, network="projects/1/global/networks/n"), "trial.psc_interface_config='<set>' is not accepted: unset when trial.network is set"),
    (dict(encryption_spec_key_name="my-key"), "trial.encryption_spec_key_name='my-key' is not accepted: a Cloud KMS key"),
    (dict(persistent_resource_id="My_Cluster"), "trial.persistent_resource_id='My_Cluster' is not accepted: the ID of a persistent resource"),
    (dict(tensorboard="my-board"), "trial.tensorboard='my-board' is not accepted: projects/PROJECT/locations/LOCATION/tensorboards/ID"),
    (dict(tensorboard="projects/p/locations/us-central1/tensorboards/1"), "trial.service_account=None is not accepted: a service account when trial.tensorboard is set"),
]


@pytest.mark.parametrize("changes,message", BAD_SETTINGS, ids=[m.split(" is not")[0] for _, m in BAD_SETTINGS])
def test_each_rule_names_field_value_and_what_is_accepted(changes, message):
    with pytest.raises(ConfigError) as e:
        check_trial_settings(replace(OK, **changes), "trial")
    assert message in str(e.value)


def test_cmek_key_in_another_region_is_refused():
    from pipeline_builder.validation import check_kms_key

    check_kms_key("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", "us-central1", "f")
    with pytest.raises(ConfigError, match="a key in location europe-west4 .*this one is in us-central1"):
        check_kms_key("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", "europe-west4", "f")
