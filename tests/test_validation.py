from dataclasses import replace

import pytest

from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec import (
    PackageSettings,
    TrialSettings,
    WorkerPoolSettings,
    check_arguments,
    check_gcs_uri,
    check_launcher_settings,
    check_trial_settings,
    duration,
)
from hydra_vertex_pipelines.pipeline_builder.spec.validation import MAX_ARG_BYTES
from hydra_vertex_pipelines.pipeline_builder.spec.worker_pools import suggest_accelerator

OK = TrialSettings(image_uri="us-docker.pkg.dev/p/r/i:1")


def test_defaults_with_an_image_are_valid():
    check_trial_settings(OK, "trial")


def test_image_is_optional_only_when_not_required():
    check_trial_settings(TrialSettings(), "trial", require_image=False)
    with pytest.raises(ConfigError, match="trial.image_uri=null"):
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
    [
        (3600, "3600s"),
        ("3600s", "3600s"),
        ("90m", "5400s"),
        ("1.5h", "5400s"),
        ("7d", "604800s"),
        ("0.5s", "0.5s"),
        (0.25, "0.25s"),
        ("0.000000001s", "0.000000001s"),
        ("0.1m", "6s"),
        ("3652500d", "315576000000s"),
    ],
)
def test_durations(value, expected):
    assert duration(value, "t") == expected


@pytest.mark.parametrize("value", ["soon", "-5s", "0", "1w", True, "3600 seconds", float("nan"), "1e3s"])
def test_bad_durations(value):
    with pytest.raises(ConfigError, match="a positive duration"):
        duration(value, "t")


@pytest.mark.parametrize(
    "value,accepted",
    [
        ("0.0000000001s", "in whole nanoseconds"),
        (1e-10, "in whole nanoseconds"),
        ("99999999d", "at most 315576000000s"),
        ("315576000001", "at most 315576000000s"),
    ],
)
def test_durations_protobuf_cannot_hold_are_refused(value, accepted):
    """What duration() returns must parse as a google.protobuf.Duration, as gcpc's
    launcher parses the CustomJob's timeout (Python's parser silently rounds 0.0000000001s to 0)."""
    with pytest.raises(ConfigError, match=accepted):
        duration(value, "t")


@pytest.mark.parametrize("value", [1, "0.000000001s", "1.5s", "0.123456789s", "3652500d", 0.1])
def test_durations_parse_as_protobuf_durations(value):
    from decimal import Decimal

    from google.protobuf import duration_pb2

    text = duration(value, "t")
    parsed = duration_pb2.Duration()
    parsed.FromJsonString(text)
    assert Decimal(parsed.ToNanoseconds()) / 10**9 == Decimal(text[:-1])


@pytest.mark.parametrize("uri", ["gs://bucket", "gs://my-bucket/a/b", "gs://b.example.com/x=1,y=2/", "gs://bkt/with+plus@at"])
def test_good_gcs_uris(uri):
    assert check_gcs_uri(uri, "f") == uri.rstrip("/")


@pytest.mark.parametrize(
    "uri", ["bucket/x", "gs://", "gs://B", "gs://Bucket/x", "gs://bucket/a b", "gs://bucket/$x", "/gcs/bucket", None]
)
def test_bad_gcs_uris(uri):
    with pytest.raises(ConfigError, match="gs://BUCKET"):
        check_gcs_uri(uri, "f")


@pytest.mark.parametrize(
    "uri,normal",
    [
        ("gs://bkt//x", "gs://bkt/x"),
        ("gs://bkt/a/../x", "gs://bkt/x"),
        ("gs://bkt/./x/", "gs://bkt/x"),
        ("gs://bkt/a//b/..", "gs://bkt/a"),
    ],
)
def test_gcs_uris_the_fuse_mount_would_collapse_are_refused(uri, normal):
    """Trials write through /gcs/, where `//` and `..` collapse; the collector reads the
    object names as written: such a root would lose every result."""
    with pytest.raises(ConfigError) as e:
        check_gcs_uri(uri, "hydra.launcher.pipeline_root")
    assert f"hydra.launcher.pipeline_root={uri!r} is not accepted: a gs:// URI without empty, '.' or '..' path segments" in str(
        e.value
    )
    assert f"Try {normal!r}" in str(e.value)


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
        ({"service_account": 'a"b@p.iam.gserviceaccount.com'}, "trial.service_account", "a service account email"),
        ({"network": 'projects/1/global/networks/a"b'}, "trial.network", "projects/PROJECT_NUMBER"),
        (
            {"encryption_spec_key_name": "projects/p/locations/l/keyRings/r/cryptoKeys/k\\"},
            "trial.encryption_spec_key_name",
            "a Cloud KMS key",
        ),
        ({"tensorboard": "projects/p/locations/{{x}}/tensorboards/1"}, "trial.tensorboard", "projects/PROJECT/locations"),
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


# Made up here in the providers' formats: a GitHub personal access token, an AWS access key
# id, a database URL with a password, a random base64 string.
GITHUB_TOKEN = "ghp_" + "Zk3q9XwP2mL7vR4tY8bN1cJ6hF0dS5gA3eU9"
AWS_KEY_ID = "AKIA" + "QX7TZ3MB5LKW2NRD"


@pytest.mark.parametrize(
    "name, value, detected",
    [
        ("DB_PASS", "hunter2", "its name says it holds a secret"),
        ("AUTH", "hunter2", "its name says it holds a secret ('AUTH')"),
        ("GITHUB_PAT", "hunter2", "its name says it holds a secret ('PAT')"),
        ("OPENAI_KEY", "hunter2", "its name says it holds a secret ('KEY')"),
        ("DB_PASSWORD", "hunter2", "its name says it holds a secret"),
        ("HF_TOKEN", "hunter2", "its name says it holds a secret"),
        ("REPO_ACCESS", GITHUB_TOKEN, "GitHub Token"),
        ("UPLOAD", AWS_KEY_ID, "AWS Access Key"),
        ("DATABASE_URL", "postgres://trainer:Xq7vR2pL9w@db:5432/runs", "Basic Auth Credentials"),
        ("SEED_MATERIAL", "Zx8pQ2mN7vL4kR9tY3wB6cJ1hF5dS0gA", "Base64 High Entropy String"),
        ("CLONE_URL", "https://" + GITHUB_TOKEN + "@github.com/org/repo", "GitHub Token"),  # a URI, still scanned
    ],
)
def test_env_secrets_are_refused_by_name_and_by_value_without_showing_them(name, value, detected):
    for where, settings in [
        ("trial.env", replace(OK, env={name: value})),
        ("trial.workers.env", replace(OK, workers=WorkerPoolSettings(replica_count=1, env={name: value}))),
    ]:
        with pytest.raises(ConfigError) as e:
            check_trial_settings(settings, "trial")
        assert e.value.field == f"{where}.{name}"
        message = str(e.value)
        assert detected in message and "Secret Manager" in message and "mounted when the job runs" in message
        assert value not in message and value not in repr(e.value.value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("LOG_LEVEL", "debug"),
        ("BATCH", 32),
        ("BATCH_SIZE", "32"),
        ("DATA", "/gcs/bucket/data/train.csv"),
        ("OUT", "gs://bucket/runs/0"),
        ("MODEL", "bert-base-uncased"),
        ("RUN_ID", "123e4567-e89b-12d3-a456-426614174000"),
        ("CUDA_VISIBLE_DEVICES", "0,1"),
        ("PATH_PREFIX", "/opt/app"),
        ("AUTHOR", "ada"),
        ("PID_DIR", "/tmp/pytest-of-user/pytest-123/test_submit_follows_a_trial0/pid_dir"),  # long: 4.2 bits a char
        ("KMS", "gs://projects-123456789/locations/us-central1/keyRings/r/cryptoKeys/k"),
    ],
)
def test_harmless_env_is_accepted(name, value):
    check_trial_settings(replace(OK, env={name: value}), "trial")


def test_error_says_where_the_setting_came_from():
    err = ConfigError("trial.strategy", "CHEAP", "one of SPOT").at("trial 3: lr=1")
    assert str(err) == "trial.strategy='CHEAP' (trial 3: lr=1) is not accepted: one of SPOT"


W = WorkerPoolSettings
BAD_SETTINGS = [
    (dict(code="docker"), "trial.code='docker' is not accepted: one of image, package"),
    (dict(code="package"), "trial.package.executor_image_uri=null is not accepted: a Vertex prebuilt training image"),
    (
        dict(code="package", package=PackageSettings(executor_image_uri="img", python_module="trainer/task.py")),
        "trial.package.python_module='trainer/task.py' is not accepted: a dotted module name",
    ),
    (
        dict(code="package", command=["python", "x.py"], package=PackageSettings(executor_image_uri="img")),
        "trial.command=['python', 'x.py'] is not accepted: null when trial.code=package",
    ),
    (dict(workers=W(replica_count=-1)), "trial.workers.replica_count=-1 is not accepted: a whole number >= 0"),
    (dict(workers=W(replica_count=1, machine_type="N1 Standard")), "trial.workers.machine_type='N1 Standard' is not accepted"),
    (
        dict(workers=W(replica_count=1, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1)),
        "trial.workers.accelerator_type='NVIDIA_TESLA_T4' is not accepted: null while trial.workers.machine_type is null",
    ),
    (
        dict(workers=W(replica_count=1, machine_type="n1-standard-8", accelerator_type="nvidia-t4", accelerator_count=1)),
        "Did you mean NVIDIA_TESLA_T4?",
    ),
    (
        dict(workers=W(replica_count=1, boot_disk_type="ssd")),
        "trial.workers.boot_disk_type='ssd' is not accepted: one of hyperdisk-balanced, pd-ssd, pd-standard",
    ),
    (dict(workers=W(replica_count=1, image_uri="my image")), "trial.workers.image_uri='my image' is not accepted"),
    (dict(workers=W(replica_count=1, command=[])), "trial.workers.command=[] is not accepted"),
    (
        dict(workers=W(replica_count=1, args=["--x"])),
        "trial.workers.args=['--x'] is not accepted: empty unless trial.workers.command is set",
    ),
    (
        dict(workers=W(replica_count=1, env={"API_TOKEN": "x"})),
        "trial.workers.env.API_TOKEN='<hidden>' is not accepted: no secrets",
    ),
    (
        dict(replica_count=3, workers=W(replica_count=2)),
        "trial.replica_count=3 is not accepted: 1 when trial.workers.replica_count is set",
    ),
    (
        dict(parameter_servers=W(replica_count=1), reduction_server=W(replica_count=1)),
        "trial.reduction_server.replica_count=1 is not accepted: 0 when trial.parameter_servers are set",
    ),
    (
        dict(parameter_servers=W(replica_count=2)),
        "trial.parameter_servers.replica_count=2 is not accepted: 0 unless the trial has workers"
        " (trial.workers.replica_count >= 1 or trial.replica_count >= 2)",
    ),
    (
        dict(reduction_server=W(replica_count=1)),
        "trial.reduction_server.replica_count=1 is not accepted: 0 unless the trial has workers",
    ),
    (dict(max_wait_duration="1h"), "trial.max_wait_duration='1h' is not accepted: null unless strategy is FLEX_START"),
    (dict(disable_retries="yes"), "trial.disable_retries='yes' is not accepted: true or false"),
    (dict(retries=-1), "trial.retries=-1 is not accepted: a whole number >= 0"),
    (dict(retries=2, retry_backoff="soon"), "trial.retry_backoff='soon' is not accepted: a positive duration"),
    (dict(retries=2, retry_backoff="1.5s"), "trial.retry_backoff='1.5s' is not accepted: a whole number of seconds"),
    (dict(retries=2, retry_backoff_factor=0.5), "trial.retry_backoff_factor=0.5 is not accepted: a number >= 1"),
    (dict(reserved_ip_ranges=["Range 1"]), "trial.reserved_ip_ranges='Range 1' is not accepted: names of reserved IP ranges"),
    (
        dict(reserved_ip_ranges=["vertex-range"]),
        "trial.network=null is not accepted: a network when trial.reserved_ip_ranges is set",
    ),
    (
        dict(psc_interface_config={"attachment": "na"}),
        "trial.psc_interface_config=['attachment'] is not accepted: a mapping with dns_peering_configs and network_attachment",
    ),
    (
        dict(psc_interface_config={"network_attachment": "projects/p/na"}),
        "trial.psc_interface_config.network_attachment='projects/p/na' is not accepted: a network attachment",
    ),
    (
        dict(psc_interface_config={"network_attachment": "na", "dns_peering_configs": [{"target_project": "p"}]}),
        "trial.psc_interface_config.dns_peering_configs={'target_project': 'p'} is not accepted",
    ),
    (
        dict(psc_interface_config={"network_attachment": "na"}, network="projects/1/global/networks/n"),
        "trial.psc_interface_config='<set>' is not accepted: unset when trial.network is set",
    ),
    (dict(encryption_spec_key_name="my-key"), "trial.encryption_spec_key_name='my-key' is not accepted: a Cloud KMS key"),
    (
        dict(persistent_resource_id="My_Cluster"),
        "trial.persistent_resource_id='My_Cluster' is not accepted: the ID of a persistent resource",
    ),
    (
        dict(tensorboard="my-board"),
        "trial.tensorboard='my-board' is not accepted: projects/PROJECT/locations/LOCATION/tensorboards/ID",
    ),
    (
        dict(tensorboard="projects/p/locations/us-central1/tensorboards/1"),
        "trial.service_account=null is not accepted: a service account when trial.tensorboard is set",
    ),
]


@pytest.mark.parametrize("changes,message", BAD_SETTINGS, ids=[m.split(" is not")[0] for _, m in BAD_SETTINGS])
def test_each_rule_names_field_value_and_what_is_accepted(changes, message):
    with pytest.raises(ConfigError) as e:
        check_trial_settings(replace(OK, **changes), "trial")
    assert message in str(e.value)


def test_cmek_key_in_another_region_is_refused():
    from hydra_vertex_pipelines.pipeline_builder.spec import check_kms_key

    check_kms_key("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", "us-central1", "f")
    with pytest.raises(ConfigError, match="a key in location europe-west4 .*this one is in us-central1"):
        check_kms_key("projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", "europe-west4", "f")


def test_pool_two_with_workers_is_accepted():
    check_trial_settings(replace(OK, replica_count=2, parameter_servers=W(replica_count=1)), "trial")
    check_trial_settings(replace(OK, workers=W(replica_count=1), reduction_server=W(replica_count=2)), "trial")


L = "hydra.launcher"
LAUNCHER_OK = {
    "service_account": None,
    "network": None,
    "reserved_ip_ranges": [],
    "collector_image": None,
    "display_name": None,
    "max_parallel": None,
    "experiment": None,
}
BAD_LAUNCHER = [
    ({"service_account": "trainer"}, "hydra.launcher.service_account='trainer' is not accepted: a service account email"),
    ({"network": "my-vpc"}, "hydra.launcher.network='my-vpc' is not accepted: projects/PROJECT_NUMBER/global/networks/NETWORK"),
    (
        {"reserved_ip_ranges": ["Range 1"], "network": "projects/1/global/networks/n"},
        "hydra.launcher.reserved_ip_ranges='Range 1' is not accepted: names of reserved IP ranges",
    ),
    (
        {"reserved_ip_ranges": ["vertex-range"]},
        "hydra.launcher.network=null is not accepted: a network when hydra.launcher.reserved_ip_ranges is set",
    ),
    (
        {"collector_image": "my image"},
        "hydra.launcher.collector_image='my image' is not accepted: null (the trial image) or an image reference without spaces",
    ),
    ({"display_name": "d" * 300}, "is not accepted: null (the run id) or at most 128 characters without control characters"),
    ({"display_name": "two\nlines"}, "hydra.launcher.display_name='two\\nlines' is not accepted"),
    (
        {"max_parallel": 10**12},
        "hydra.launcher.max_parallel=1000000000000 is not accepted: null or a whole number from 1 to 2147483647",
    ),
    ({"max_parallel": 0}, "hydra.launcher.max_parallel=0 is not accepted"),
    ({"max_parallel": True}, "hydra.launcher.max_parallel=true is not accepted"),
    ({"experiment": "My Experiment"}, "hydra.launcher.experiment='My Experiment' is not accepted: an experiment name"),
]


@pytest.mark.parametrize("changes,message", BAD_LAUNCHER, ids=[m.split(" is not")[0][:60] for _, m in BAD_LAUNCHER])
def test_launcher_settings_are_checked_like_their_trial_twins(changes, message):
    with pytest.raises(ConfigError) as e:
        check_launcher_settings({**LAUNCHER_OK, **changes}, L)
    assert message in str(e.value)


def test_good_launcher_settings():
    check_launcher_settings(LAUNCHER_OK, L)
    check_launcher_settings({}, L)
    good = {
        "service_account": "pipelines@my-project.iam.gserviceaccount.com",
        "network": "projects/12345/global/networks/vpc",
        "reserved_ip_ranges": ("vertex-range",),
        "collector_image": "us-docker.pkg.dev/p/r/collector:1",
        "display_name": "d" * 128,
        "max_parallel": 2**31 - 1,
        "experiment": "lr-study",
    }
    check_launcher_settings(good, L)


def test_max_parallel_is_what_kfp_can_compile():
    """The limit is the int32 of PipelineTaskSpec.IteratorPolicy.parallelism_limit."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    policy = pipeline_spec_pb2.PipelineTaskSpec.IteratorPolicy()
    policy.parallelism_limit = 2**31 - 1
    with pytest.raises(ValueError):
        policy.parallelism_limit = 2**31


@pytest.mark.parametrize(
    "arguments,payload,message",
    [
        (
            ["+blob=" + "x" * MAX_ARG_BYTES],
            0,
            f"f='+blob=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… ({MAX_ARG_BYTES + 6} bytes)' is not accepted: at most 131071 bytes",
        ),
        (["é" * 70000], 0, "(140000 bytes)"),
        (["+a=b\x00c"], 0, "an argument without NUL characters"),
        (["+a=\udcff"], 0, "text that can be encoded as UTF-8"),
        (
            ["+ok"],
            MAX_ARG_BYTES + 1,
            "trial CustomJob='131072 bytes' is not accepted: at most 131071 bytes: gcpc's launcher receives the whole CustomJob",
        ),
    ],
)
def test_arguments_no_process_could_receive_are_refused(arguments, payload, message):
    with pytest.raises(ConfigError) as e:
        check_arguments(arguments, payload, "f")
    assert message in str(e.value)


def test_arguments_up_to_the_limit_pass():
    check_arguments(["x" * MAX_ARG_BYTES, "é" * (MAX_ARG_BYTES // 2)], MAX_ARG_BYTES, "f")


def test_the_secret_scanner_is_imported_only_for_a_non_empty_env():
    import subprocess
    import sys

    probe = (
        "import sys; from hydra_vertex_pipelines.pipeline_builder.spec.values import check_env; "
        "check_env({}, 'trial.env'); print('detect_secrets' in sys.modules); "
        "check_env({'LOG_LEVEL': 'debug'}, 'trial.env'); print('detect_secrets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
