"""Every CustomJob setting lands in the exact field Vertex reads: each compiled task's
CustomJob payload, filled in as gcpc's launcher fills it, parses as aiplatform's CustomJob."""

import json
from pathlib import Path

import pytest
from google.cloud.aiplatform_v1.types import CustomJob, PscInterfaceConfig
from google.protobuf import json_format

from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings
from hydra_vertex_pipelines.pipeline_builder.local.resolver import fill
from hydra_vertex_pipelines.pipeline_builder.pipeline import SweepSpec, compile_pipeline_spec
from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap
from hydra_vertex_pipelines.pipeline_builder.spec.settings import (
    REDUCTION_SERVER_IMAGE,
    PackageSettings,
    TrialSettings,
    WorkerPoolSettings,
)
from hydra_vertex_pipelines.pipeline_builder.spec.trials import build_trial
from hydra_vertex_pipelines.pipeline_builder.spec.validation import DNS_PEERING_FIELDS, PSC_INTERFACE_FIELDS

COMMAND = ["python", "-m", "trainer.task"]


def compile_jobs(tmp_path: Path, settings: TrialSettings, fan_out: str = "tasks", n: int = 2, package_uris=()):
    """Compiles n trials with `settings`; returns the spec and each trial task's CustomJob proto."""
    trials = tuple(
        build_trial(
            number=i,
            job_id=f"run_{i}",
            overrides=[f"x={i}"],
            settings=settings,
            command=COMMAND,
            args=[f"x={i}"],
            output_uri=f"gs://bkt/root/run/{i}",
            name_prefix="app",
            package_uris=package_uris,
        )
        for i in range(n)
    )
    sweep = SweepSpec(
        "app",
        "run",
        "gs://bkt/root",
        "gs://bkt/root/run",
        trials,
        "img",
        fan_out=fan_out,
        parallelism=2 if fan_out == "parallel_for" else None,
    )
    spec = compile_pipeline_spec(sweep, tmp_path / "pipeline.yaml")
    runner = LocalRunner(spec, RunnerSettings(PathMap(str(tmp_path / "gcs")), tmp_path / "work"))
    jobs = []
    for name, task in runner.tasks.items():
        if task.kind != "custom_job":
            continue
        args = runner.plan.planned[name].container["args"]
        text = fill(args[args.index("--payload") + 1], {"inputs": {"parameterValues": runner.plan.inputs(name)}})
        payload = json.loads(text)
        if payload["job_spec"]["scheduling"]["strategy"] != "FLEX_START":  # as gcpc's launcher does
            payload["job_spec"]["scheduling"].pop("max_wait_duration")
        jobs.append(json_format.ParseDict(payload, CustomJob()._pb))  # a misspelled field fails here
    return spec, jobs


@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
def test_worker_pools_after_the_chief(tmp_path, fan_out):
    settings = TrialSettings(
        image_uri="img:1",
        machine_type="a2-highgpu-1g",
        accelerator_type="NVIDIA_TESLA_A100",
        accelerator_count=1,
        env={"A": "1"},
        workers=WorkerPoolSettings(
            replica_count=2,
            machine_type="n1-standard-8",
            accelerator_type="NVIDIA_TESLA_T4",
            accelerator_count=2,
            boot_disk_size_gb=200,
            env={"B": "2"},
        ),
        reduction_server=WorkerPoolSettings(replica_count=3),
    )
    _, jobs = compile_jobs(tmp_path, settings, fan_out)
    for job in jobs:
        chief, workers, reducers = job.job_spec.worker_pool_specs
        assert chief.replica_count == 1 and chief.machine_spec.accelerator_count == 1
        assert workers.replica_count == 2
        assert workers.machine_spec.machine_type == "n1-standard-8" and workers.machine_spec.accelerator_count == 2
        assert workers.disk_spec.boot_disk_size_gb == 200
        assert list(workers.container_spec.command) == COMMAND and workers.container_spec.image_uri == "img:1"
        assert {e.name: e.value for e in workers.container_spec.env} == {"A": "1", "B": "2"}
        assert reducers.replica_count == 3 and reducers.container_spec.image_uri == REDUCTION_SERVER_IMAGE
        assert reducers.machine_spec.machine_type == "n1-highcpu-16" and not reducers.container_spec.command


def test_parameter_servers_take_pool_two(tmp_path):
    ps_pool = WorkerPoolSettings(replica_count=1, command=["python", "ps.py"], args=["--port", "2222"])
    settings = TrialSettings(image_uri="img", workers=WorkerPoolSettings(replica_count=2), parameter_servers=ps_pool)
    _, jobs = compile_jobs(tmp_path, settings)
    chief, workers, ps = jobs[0].job_spec.worker_pool_specs
    assert workers.replica_count == 2 and workers.container_spec == chief.container_spec
    assert list(ps.container_spec.command) == ["python", "ps.py"] and list(ps.container_spec.args) == ["--port", "2222"]


def test_replica_count_shortcut_makes_identical_workers(tmp_path):
    _, jobs = compile_jobs(tmp_path, TrialSettings(image_uri="img", replica_count=3))
    chief, workers = jobs[0].job_spec.worker_pool_specs
    assert workers.replica_count == 2 and workers.container_spec == chief.container_spec


def test_scheduling(tmp_path):
    settings = TrialSettings(
        image_uri="img", timeout="2h", restart_job_on_worker_restart=True, strategy="FLEX_START", max_wait_duration="30m"
    )
    _, jobs = compile_jobs(tmp_path, settings)
    scheduling = jobs[0].job_spec.scheduling
    assert scheduling.timeout.seconds == 7200 and scheduling.restart_job_on_worker_restart
    assert scheduling.strategy == scheduling.Strategy.FLEX_START and scheduling.max_wait_duration.seconds == 1800
    _, jobs = compile_jobs(tmp_path, TrialSettings(image_uri="img", strategy="SPOT"))
    assert jobs[0].job_spec.scheduling.strategy == jobs[0].job_spec.scheduling.Strategy.SPOT


@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
def test_vertex_retries_off_and_pipeline_retries_on(tmp_path, fan_out):
    settings = TrialSettings(
        image_uri="img",
        strategy="SPOT",
        disable_retries=True,
        retries=3,
        retry_backoff="2m",
        retry_backoff_factor=3.0,
        retry_backoff_max="1h",
    )
    spec, jobs = compile_jobs(tmp_path, settings, fan_out)
    assert all(job.job_spec.scheduling.disable_retries for job in jobs)
    tasks = [t for c in [spec["root"], *spec["components"].values()] for t in c.get("dag", {}).get("tasks", {}).values()]
    policies = [t["retryPolicy"] for t in tasks if "retryPolicy" in t]
    assert policies == [{"maxRetryCount": 3, "backoffDuration": "120s", "backoffFactor": 3.0, "backoffMaxDuration": "3600s"}] * (
        2 if fan_out == "tasks" else 1
    )


def test_without_disable_retries_the_task_is_gcpc_custom_training_job(tmp_path):
    spec, jobs = compile_jobs(tmp_path, TrialSettings(image_uri="img"))
    assert not jobs[0].job_spec.scheduling.disable_retries
    assert all(not name.startswith("comp-custom-training-job-no-vertex") for name in spec["components"])


def test_placement_and_security(tmp_path):
    settings = TrialSettings(
        image_uri="img",
        service_account="trainer@p.iam.gserviceaccount.com",
        psc_interface_config={
            "network_attachment": "projects/p/regions/us-central1/networkAttachments/na",
            "dns_peering_configs": [{"domain": "corp.", "target_project": "p", "target_network": "net"}],
        },
        encryption_spec_key_name="projects/p/locations/us-central1/keyRings/r/cryptoKeys/k",
        enable_web_access=True,
        persistent_resource_id="my-cluster",
        tensorboard="projects/p/locations/us-central1/tensorboards/123",
    )
    _, jobs = compile_jobs(tmp_path, settings)
    job = jobs[0]
    assert job.job_spec.service_account == settings.service_account
    assert job.job_spec.psc_interface_config.network_attachment.endswith("/networkAttachments/na")
    assert job.job_spec.psc_interface_config.dns_peering_configs[0].domain == "corp."
    assert job.encryption_spec.kms_key_name == settings.encryption_spec_key_name
    assert job.job_spec.enable_web_access and job.job_spec.persistent_resource_id == "my-cluster"
    assert job.job_spec.tensorboard == settings.tensorboard
    assert {j.job_spec.base_output_directory.output_uri_prefix for j in jobs} == {"gs://bkt/root/run/0", "gs://bkt/root/run/1"}

    peered = TrialSettings(image_uri="img", network="projects/123/global/networks/vpc", reserved_ip_ranges=["vertex-range"])
    _, jobs = compile_jobs(tmp_path, peered)
    assert jobs[0].job_spec.network == "projects/123/global/networks/vpc"
    assert list(jobs[0].job_spec.reserved_ip_ranges) == ["vertex-range"]


def test_package_code_runs_a_python_package_spec(tmp_path):
    settings = TrialSettings(
        image_uri="us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
        code="package",
        package=PackageSettings(),
        workers=WorkerPoolSettings(replica_count=1),
    )
    uris = ["gs://bkt/root/packages/abc/trainer-0.1.0-py3-none-any.whl"]
    _, jobs = compile_jobs(tmp_path, settings, package_uris=uris)
    for pool in jobs[0].job_spec.worker_pool_specs:
        package = pool.python_package_spec
        assert list(package.package_uris) == uris and package.python_module == "trainer.task"
        assert package.executor_image_uri == settings.image_uri and list(package.args) in (["x=0"], ["x=1"])


def test_psc_fields_are_the_protos():
    assert PSC_INTERFACE_FIELDS == set(PscInterfaceConfig.meta.fields)
    dns = PscInterfaceConfig.meta.fields["dns_peering_configs"].message
    assert DNS_PEERING_FIELDS == set(dns.meta.fields)
