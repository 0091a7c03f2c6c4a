from dataclasses import replace

import pytest

from pipeline_builder.errors import ConfigError
from pipeline_builder.settings import TrialSettings
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
