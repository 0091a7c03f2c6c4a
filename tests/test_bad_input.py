"""Every bad setting stops the sweep before anything is written, with a message that names
the field, the value and what is accepted."""

import pytest

from conftest import QUICKSTART, run_app

L = "hydra.launcher"

CASES = {
    "root-not-gs": (
        [f"{L}.pipeline_root=/local/dir"],
        ["hydra.launcher.pipeline_root='/local/dir'", "gs://BUCKET[/PATH]"],
    ),
    "root-s3": (
        [f"{L}.pipeline_root=s3://bucket/x"],
        ["hydra.launcher.pipeline_root='s3://bucket/x'", "gs://BUCKET[/PATH]"],
    ),
    "root-missing": (
        [f"{L}.pipeline_root=null"],
        ["hydra.launcher.pipeline_root=null", "a gs:// URI", "required in compile mode"],
    ),
    "image-missing": (
        [f"{L}.trial.image_uri=null"],
        ["hydra.launcher.trial.image_uri=null", "only local mode runs without one"],
    ),
    "accelerator-count-without-type": (
        [f"{L}.trial.accelerator_count=2"],
        ["hydra.launcher.trial.accelerator_type=null", "an accelerator type when accelerator_count=2"],
    ),
    "accelerator-unknown": (
        [f"{L}.trial.accelerator_type=NVIDIA_GTX_1080", f"{L}.trial.accelerator_count=1"],
        ["hydra.launcher.trial.accelerator_type='NVIDIA_GTX_1080'", "one of NVIDIA_A100_80GB", "NVIDIA_TESLA_T4"],
    ),
    "accelerator-near-miss": (
        [f"{L}.trial.accelerator_type=nvidia-t4", f"{L}.trial.accelerator_count=1"],
        ["hydra.launcher.trial.accelerator_type='nvidia-t4'", "Did you mean NVIDIA_TESLA_T4?"],
    ),
    "disk-type-unknown": (
        [f"{L}.trial.boot_disk_type=ssd"],
        ["hydra.launcher.trial.boot_disk_type='ssd'", "one of hyperdisk-balanced, pd-ssd, pd-standard"],
    ),
    "strategy-unknown": (
        [f"{L}.trial.strategy=CHEAP"],
        ["hydra.launcher.trial.strategy='CHEAP'", "one of FLEX_START, SPOT, STANDARD"],
    ),
    "strategy-lowercase": (
        [f"{L}.trial.strategy=spot"],
        ["hydra.launcher.trial.strategy='spot'", "Did you mean SPOT?"],
    ),
    "machine-type-empty": (
        [f"{L}.trial.machine_type=''"],
        ["hydra.launcher.trial.machine_type=''", "a Compute Engine machine type"],
    ),
    "accelerator-count-negative": (
        [f"{L}.trial.accelerator_count=-1"],
        ["hydra.launcher.trial.accelerator_count=-1", "a whole number >= 0"],
    ),
    "replica-count-zero": (
        [f"{L}.trial.replica_count=0"],
        ["hydra.launcher.trial.replica_count=0", "a whole number >= 1"],
    ),
    "disk-size-negative": (
        [f"{L}.trial.boot_disk_size_gb=-100"],
        ["hydra.launcher.trial.boot_disk_size_gb=-100", "a whole number >= 1"],
    ),
    "label-value-too-long": (
        [f"+{L}.labels.team={'x' * 64}"],
        [f"hydra.launcher.labels.team='{'x' * 64}'", "at most 63 characters"],
    ),
    "label-value-upper-case": (
        [f"+{L}.trial.labels.owner=Alice"],
        ["hydra.launcher.trial.labels.owner='Alice'", "lowercase letters", "Try 'alice'"],
    ),
    "label-value-space": (
        [f"+{L}.labels.team='ml team'"],
        ["hydra.launcher.labels.team='ml team'", "lowercase letters, digits, '_' and '-'"],
    ),
    "label-value-empty": (
        [f"+{L}.labels.team=''"],
        ["hydra.launcher.labels.team=''", "a non-empty label value: gcpc's CustomJob launcher removes empty values"],
    ),
    "trial-label-value-empty": (
        [f"+{L}.trial.labels.owner=''"],
        ["hydra.launcher.trial.labels.owner=''", "give it a value"],
    ),
    "label-key-upper-case": (
        [f"+{L}.labels.Team=ml"],
        ["hydra.launcher.labels key='Team'", "starting with a letter"],
    ),
    "mode-unknown": (
        [f"{L}.mode=dry-run"],
        ["hydra.launcher.mode='dry-run'", "one of compile, local, submit"],
    ),
    "pipeline-name-invalid": (
        [f"{L}.pipeline_name=My_Pipeline"],
        ["hydra.launcher.pipeline_name='My_Pipeline'", "lowercase letters, digits and dashes", "Try 'my-pipeline'"],
    ),
    "failure-rule-kind": (
        [f"{L}.failure_rules=[{{kind:crashed,pattern:x}}]"],
        ["hydra.launcher.failure_rules[0]=", "kind 'crashed' is not one of app, preempted, capacity"],
    ),
    "timeout-invalid": (
        [f"{L}.trial.timeout=soon"],
        ["hydra.launcher.trial.timeout='soon'", "a positive duration"],
    ),
    "objective-direction": (
        [f"{L}.objective.direction=lowest"],
        ["hydra.launcher.objective.direction='lowest'", "one of maximize, minimize"],
    ),
    "retries-differ-in-a-loop": (
        [f"{L}.fan_out=parallel_for", "batch_size=1,2", f"{L}.trial.retries=${{batch_size}}"],
        ["hydra.launcher.trial.retries='1 for trial 0, 2 for trial 1'", "retry settings shared by every trial"],
    ),
    "package-without-image": (
        [f"{L}.trial.code=package"],
        ["hydra.launcher.trial.package.executor_image_uri=null", "a Vertex prebuilt training image"],
    ),
    "cmek-in-another-region": (
        [f"{L}.trial.encryption_spec_key_name=projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"],
        ["hydra.launcher.trial.encryption_spec_key_name=", "a key in location us-central1"],
    ),
    "resume-outside-submit": (
        [f"{L}.resume=/nowhere"],
        ["hydra.launcher.resume='/nowhere'", "null unless mode=submit"],
    ),
    "root-double-slash": (
        [f"{L}.pipeline_root=gs://my-bucket//sweeps"],
        [
            "hydra.launcher.pipeline_root='gs://my-bucket//sweeps'",
            "without empty, '.' or '..' path segments",
            "Try 'gs://my-bucket/sweeps'",
        ],
    ),
    "root-dot-dot": (
        [f"{L}.pipeline_root=gs://my-bucket/a/../sweeps"],
        ["hydra.launcher.pipeline_root='gs://my-bucket/a/../sweeps'", "Try 'gs://my-bucket/sweeps'"],
    ),
    "timeout-below-a-nanosecond": (
        [f"{L}.trial.timeout=0.0000000001s"],
        ["hydra.launcher.trial.timeout='0.0000000001s'", "in whole nanoseconds"],
    ),
    "timeout-beyond-protobuf": (
        [f"{L}.trial.timeout=99999999d"],
        ["hydra.launcher.trial.timeout='99999999d'", "at most 315576000000s"],
    ),
    "parameter-servers-without-workers": (
        [f"{L}.trial.parameter_servers.replica_count=1"],
        ["hydra.launcher.trial.parameter_servers.replica_count=1", "0 unless the trial has workers", "would run as pool 1"],
    ),
    "launcher-service-account": (
        [f"{L}.service_account=trainer"],
        ["hydra.launcher.service_account='trainer'", "a service account email"],
    ),
    "launcher-network": (
        [f"{L}.network=my-vpc"],
        ["hydra.launcher.network='my-vpc'", "projects/PROJECT_NUMBER/global/networks/NETWORK"],
    ),
    "launcher-reserved-ip-ranges": (
        [f"{L}.reserved_ip_ranges=['Range 1']"],
        ["hydra.launcher.reserved_ip_ranges='Range 1'", "names of reserved IP ranges"],
    ),
    "launcher-collector-image": (
        [f"{L}.collector_image='my image'"],
        ["hydra.launcher.collector_image='my image'", "an image reference without spaces"],
    ),
    "launcher-display-name": (
        [f"{L}.display_name={'d' * 300}"],
        ["hydra.launcher.display_name='ddd", "at most 128 characters"],
    ),
    "launcher-max-parallel": (
        [f"{L}.max_parallel={10**12}"],
        ["hydra.launcher.max_parallel=1000000000000", "from 1 to 2147483647"],
    ),
    "cost-rate-negative": (
        [f"+{L}.cost.rates.machine_types.n1-standard-4.spot=-1"],
        ["hydra.launcher.cost.rates.machine_types.n1-standard-4.spot=-1 ", "an hourly rate of one machine type: a number >= 0"],
    ),
    "cost-rate-unknown-accelerator": (
        [f"+{L}.cost.rates.accelerator_types.NVIDIA_GTX_1080.spot=1"],
        ["hydra.launcher.cost.rates.accelerator_types='NVIDIA_GTX_1080'", "accelerator type names: NVIDIA_A100_80GB"],
    ),
    "secret-in-env": (
        [f"+{L}.trial.env.WANDB_API_KEY=abc123secret"],
        ["hydra.launcher.trial.env.WANDB_API_KEY='<hidden>'", "no secrets"],
    ),
    "secret-name-in-env": (
        [f"+{L}.trial.env.DB_PASS=abc123secret"],
        ["hydra.launcher.trial.env.DB_PASS='<hidden>'", "its name says it holds a secret ('PASS')", "Secret Manager"],
    ),
    "secret-value-in-env": (
        # A made-up token in GitHub's format, under a name that says nothing.
        [f"+{L}.trial.env.REPO_ACCESS=ghp_abc123secretQ1w2E3r4T5y6U7i8O9p0A1s2D3"],
        ["hydra.launcher.trial.env.REPO_ACCESS='<hidden>'", "GitHub Token", "Secret Manager"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_before_anything_is_written(tmp_path, case):
    overrides, expected = CASES[case]
    mode = [] if case == "mode-unknown" else [f"{L}.mode=compile"]
    proc = run_app(
        QUICKSTART,
        ["-m", *mode, f"hydra.sweep.dir={tmp_path}", "lr=0.1,0.2", *overrides],
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for text in expected:
        assert text in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "abc123secret" not in proc.stdout + proc.stderr
    written = sorted(p.name for p in tmp_path.iterdir()) if tmp_path.exists() else []
    assert written in ([], ["multirun.yaml"])  # multirun.yaml is Hydra's own, written before any launcher


def test_an_override_over_linux_limit_stops_the_sweep_naming_its_trial(tmp_path):
    """A sweeper may produce a value no command line can carry (Linux: 128 KiB per argument)."""
    from conftest import APPS, launch_in_process

    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        f"{L}.mode=compile",
        f"{L}.pipeline_root=gs://bkt/root",
        f"{L}.trial.image_uri=img",
        f"{L}.trial.entry=command",
    ]
    with pytest.raises(Exception) as e:  # the launcher's own error type for a ConfigError
        launch_in_process(APPS / "faults" / "conf", overrides, [["x=1"], ["x=2", "+blob=" + "b" * 140_000]])
    assert str(e.value).startswith("override='+blob=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb… (140006 bytes)' (trial 1: x=2 +blob=bbb")
    assert "at most 131071 bytes: Linux's limit for one argument" in str(e.value)
    assert not list(tmp_path.glob("pipeline*.yaml"))
