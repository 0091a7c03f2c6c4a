"""gcpc's own CustomJob launcher over compiled sweeps, as Vertex runs each trial task.

Each CustomJob task's command (`python3 -u -m ...custom_job.launcher`) runs in this process
with its arguments resolved as the KFP driver resolves them (pipeline_builder.resolver); only the launcher's JobService
client is pointed at a capture server on 127.0.0.1 (endpoint, transport, credentials). The
`CreateCustomJob` body it sends must parse strictly into aiplatform's CustomJob and be the
job each trial meant.
"""

import difflib
import http.server
import json
import re
import runpy
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest
from google.cloud.aiplatform_v1.types import CustomJob
from google.protobuf import json_format

from conftest import APPS, launch_in_process, load_pipeline, read_json
from hydra_vertex_pipelines.pipeline_builder.local import resolver
from hydra_vertex_pipelines.pipeline_builder.local.resolver import RunContext
from hydra_vertex_pipelines.pipeline_builder.pipeline import SweepSpec, compile_pipeline_spec
from hydra_vertex_pipelines.pipeline_builder.spec import names
from hydra_vertex_pipelines.pipeline_builder.spec.settings import PackageSettings, TrialSettings, WorkerPoolSettings
from hydra_vertex_pipelines.pipeline_builder.spec.trials import TrialSpec, build_trial

LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"
PROJECT, LOCATION = "my-project", "europe-west4"
SYSTEM_LABELS = {"vertex-ai-pipelines-run-billing-id": "123456"}
RUN = "gs://bkt-1/runs/run-1"
SPECIAL_OVERRIDES = [
    ['+msg="hello world"', "+path=C\\:\\\\data"],
    ["+quote='it''s'", "+cost=$HOME", "+ref=${oc.env:HOME}"],
    ["+p={{$.inputs.parameters['project']}}", "+q={{$}}", "+w={{$.inputs.parameters['worker_pool_specs']}}"],
    ["+text='line one\nline two\tand a tab'", "+bell=\x07\x1b[0m"],
    ["+name=José 東京 🚀", "+rtl=\u202eevil", "+sep=a\u2028b"],
    ["+long=" + "x" * 300],
]


def _trial(
    number: int, overrides: List[str], settings: TrialSettings, command: Sequence[str] = ("python", "train.py"), **kw: Any
) -> TrialSpec:
    return build_trial(
        number=number,
        job_id=f"run-1_{number}",
        overrides=overrides,
        settings=settings,
        command=list(command),
        args=[*overrides, f"hydra.run.dir=/gcs/bkt-1/runs/run-1/{number}", f"hydra.job.num={number}"],
        output_uri=f"{RUN}/{number}",
        name_prefix="app",
        labels={"hydra-app": "app", "hydra-run": "run-1", **kw.pop("labels", {})},
        **kw,
    )


def _every_setting() -> List[TrialSpec]:
    """Every CustomJob setting, and settings that differ between trials."""
    everything = TrialSettings(
        image_uri="us-docker.pkg.dev/p/r/train:1",
        machine_type="a2-highgpu-1g",
        accelerator_type="NVIDIA_TESLA_A100",
        accelerator_count=1,
        boot_disk_type="pd-standard",
        boot_disk_size_gb=200,
        env={"A": "1", "QUOTED": 'say "hi" \\ bye'},
        workers=WorkerPoolSettings(
            replica_count=2, machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=2, env={"B": "2"}
        ),
        parameter_servers=WorkerPoolSettings(replica_count=1, command=["python", "ps.py"], args=["--port", "2222"]),
        timeout="2h",
        restart_job_on_worker_restart=True,
        strategy="FLEX_START",
        max_wait_duration="30m",
        disable_retries=True,
        persistent_resource_id="my-cluster",
        service_account="trainer@my-project.iam.gserviceaccount.com",
        network="projects/12345/global/networks/vpc",
        reserved_ip_ranges=["vertex-range"],
        tensorboard="projects/12345/locations/europe-west4/tensorboards/7",
        enable_web_access=True,
        encryption_spec_key_name="projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
    )
    psc = TrialSettings(
        image_uri="img:2",
        replica_count=3,
        reduction_server=WorkerPoolSettings(replica_count=2),
        strategy="SPOT",
        timeout="0.5s",
        psc_interface_config={
            "network_attachment": "att",
            "dns_peering_configs": [{"domain": "x.example.com.", "target_project": "p"}],
        },
    )
    return [
        _trial(0, ["model=large"], everything, labels={"team": "ml"}),
        _trial(1, ["model=spot"], psc, labels={"team": "infra"}),
        _trial(2, ["model=small"], TrialSettings(image_uri="img:3")),
    ]


def _package_mode() -> List[TrialSpec]:
    settings = TrialSettings(
        image_uri="us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest",
        code="package",
        package=PackageSettings(executor_image_uri="us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest"),
        env={"A": "1"},
        workers=WorkerPoolSettings(replica_count=1),
        reduction_server=WorkerPoolSettings(replica_count=1),
    )
    uris = [  # this launcher's wheel, and the project's
        "gs://bkt-1/packages/4567ef01/hydra_vertex_pipelines_launcher-0.1.0-py3-none-any.whl",
        "gs://bkt-1/packages/0123abcd/app-0.1-py3-none-any.whl",
    ]
    command = ["python", "-m", "trainer.task", "--config-name=config"]
    return [_trial(i, [f"lr={lr}", '+note="x y"'], settings, command, package_uris=uris) for i, lr in enumerate((0.1, 0.01))]


def _compile(trials: List[TrialSpec], fan_out: str, path: Path) -> Dict[str, Any]:
    sweep = SweepSpec(
        name="app",
        run_id="run-1",
        pipeline_root="gs://bkt-1/runs",
        run_root=RUN,
        trials=tuple(trials),
        collector_image="img",
        fan_out=fan_out,
        parallelism=2 if fan_out == "parallel_for" else None,
    )
    return compile_pipeline_spec(sweep, path)


# -- each CustomJob task's command, as the driver resolves it -----------------------------


def _launches(spec: Dict[str, Any], outputs: Path) -> Iterator[Tuple[List[str], List[str], Dict[str, Any]]]:
    """(command, resolved arguments, inputs) of every CustomJob the pipeline would launch,
    with the KFP driver's rules (pipeline_builder.resolver)."""
    context = RunContext(project=PROJECT, location=LOCATION)
    scope = resolver.root_scope(spec, {})
    runs = []
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        if "parameterIterator" in task:
            item_input = task["parameterIterator"]["itemInput"]
            values = resolver.resolve_inputs(component, task, scope, context, name, skip=item_input)
            ((inner_name, inner),) = component["dag"]["tasks"].items()
            runs += [
                (inner_name, inner, {**values, item_input: item})
                for item in resolver.loop_items(task["parameterIterator"], scope)
            ]
        elif task["componentRef"]["name"].startswith("comp-custom-training-job"):
            runs.append((name, task, scope))
    for n, (name, task, task_scope) in enumerate(runs):
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        inputs = resolver.resolve_inputs(component, task, task_scope, context, name)
        given = resolver.executor_input(
            inputs, {"parameters": {"gcp_resources": {"outputFile": str(outputs / str(n) / "gcp_resources")}}}
        )
        yield container["command"], [resolver.fill(arg, given) for arg in container["args"]], inputs


# -- a JobService that records what it is asked to create -------------------------------


class _JobService(http.server.BaseHTTPRequestHandler):
    created: List[Dict[str, Any]] = []
    refused: List[str] = []

    def do_POST(self) -> None:  # CreateCustomJob
        path = self.path.split("?")[0]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            json_format.ParseDict(body, CustomJob.pb(CustomJob()))  # strictly: unknown fields fail
        except json_format.ParseError as e:
            self.refused.append(str(e))
            return self._reply({"error": {"code": 400, "message": str(e), "status": "INVALID_ARGUMENT"}}, 400)
        parent = re.match(r"^/v1/(projects/[^/]+/locations/[^/]+)/customJobs$", path).group(1)
        self.created.append(body)
        self._reply({**body, "name": f"{parent}/customJobs/{len(self.created) - 1}", "state": "JOB_STATE_SUCCEEDED"})

    def do_GET(self) -> None:  # GetCustomJob: done at once
        path = self.path.split("?")[0]
        number = int(path.rsplit("/", 1)[1])
        self._reply({**self.created[number], "name": path[len("/v1/") :], "state": "JOB_STATE_SUCCEEDED"})

    def _reply(self, data: Dict[str, Any], status: int = 200) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def job_service():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JobService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def launch(job_service, monkeypatch, tmp_path):
    """Runs the launcher module as its command line does; returns the request body."""
    from google.api_core import client_options as co
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import gapic

    real = gapic.JobServiceClient
    endpoints = []

    def local_client(client_options: Any = None, client_info: Any = None, **kwargs: Any) -> Any:
        endpoints.append(client_options.api_endpoint)
        options = co.from_dict({**vars(client_options), "api_endpoint": job_service})
        return real(
            client_options=options, client_info=client_info, transport="rest", credentials=AnonymousCredentials(), **kwargs
        )

    monkeypatch.setattr(gapic, "JobServiceClient", local_client)
    monkeypatch.setenv("VERTEX_AI_PIPELINES_RUN_LABELS", json.dumps(SYSTEM_LABELS))

    def run(spec: Dict[str, Any]) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
        out = []
        for command, args, inputs in _launches(spec, tmp_path):
            assert command == ["python3", "-u", "-m", LAUNCHER]
            before = len(_JobService.created)
            monkeypatch.setattr(sys, "argv", [LAUNCHER, *args])
            runpy.run_module(LAUNCHER, run_name="__main__", alter_sys=True)
            assert not _JobService.refused and len(_JobService.created) == before + 1
            out.append((_JobService.created[-1], inputs))
        assert set(endpoints) == {f"{LOCATION}-aiplatform.googleapis.com"}
        return out

    return run


def _expected(trial: TrialSpec) -> CustomJob:
    """The CustomJob `trial` means, from its spec (gcpc's defaults for what it leaves unset)."""
    inputs = trial.custom_job_inputs()
    scheduling = {
        "timeout": "604800s",
        **{k: inputs[k] for k in ("timeout", "restart_job_on_worker_restart", "strategy", "disable_retries") if k in inputs},
    }
    if inputs.get("strategy") == "FLEX_START" and "max_wait_duration" in inputs:
        scheduling["max_wait_duration"] = inputs["max_wait_duration"]
    job_spec = {
        "worker_pool_specs": list(trial.worker_pool_specs),
        "scheduling": scheduling,
        "base_output_directory": {"output_uri_prefix": trial.output_uri},
        **{
            k: inputs[k]
            for k in (
                "service_account",
                "tensorboard",
                "enable_web_access",
                "network",
                "reserved_ip_ranges",
                "persistent_resource_id",
                "psc_interface_config",
            )
            if k in inputs
        },
    }
    job = {"display_name": trial.display_name, "job_spec": job_spec, "labels": {**SYSTEM_LABELS, **trial.labels}}
    if "encryption_spec_key_name" in inputs:
        job["encryption_spec"] = {"kms_key_name": inputs["encryption_spec_key_name"]}
    return json_format.ParseDict(job, CustomJob.pb(CustomJob()))


def _sent(body: Dict[str, Any]) -> CustomJob:
    return json_format.ParseDict(body, CustomJob.pb(CustomJob()))


SCENARIOS = {
    "special-overrides": lambda: [_trial(i, o, TrialSettings(image_uri="img")) for i, o in enumerate(SPECIAL_OVERRIDES)],
    "every-setting": _every_setting,
    "package-mode": _package_mode,
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Each scenario compiled once in both fan-outs: (trials, spec)."""
    out = {}
    for name, make in SCENARIOS.items():
        trials = make()
        for fan_out in ("tasks", "parallel_for"):
            out[name, fan_out] = trials, _compile(trials, fan_out, tmp_path_factory.mktemp(name) / "pipeline.yaml")
    return out


@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_trial_becomes_the_custom_job_it_means(compiled, launch, scenario, fan_out):
    trials, spec = compiled[scenario, fan_out]
    sent = {}
    for body, inputs in launch(spec):
        sent[inputs["base_output_directory"]] = _sent(body)
    assert sorted(sent) == sorted(t.output_uri for t in trials)
    for trial in trials:
        got, want = str(sent[trial.output_uri]), str(_expected(trial))
        assert got == want, "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "meant", "sent", lineterm=""))


def test_display_names_arrive_as_sanitised(compiled, launch):
    trials, spec = compiled["special-overrides", "parallel_for"]
    shown = {_sent(body).display_name for body, _ in launch(spec)}
    assert shown == {t.display_name for t in trials}
    assert "app-0 +msg='hello world' +path=C/://data" in shown
    assert "app-3 +text='line one line two and a tab' +bell=[0m" in shown
    assert "app-4 +name=José 東京 🚀 +rtl=\u202eevil +sep=a b" in shown
    assert all("{{" not in name and len(name) <= names.MAX_DISPLAY_NAME for name in shown)
    assert max(len(name) for name in shown) == names.MAX_DISPLAY_NAME


def test_pools_keep_their_roles(compiled, launch):
    trials, spec = compiled["every-setting", "tasks"]
    jobs = {_sent(body).job_spec.base_output_directory.output_uri_prefix: _sent(body) for body, _ in launch(spec)}
    chief, workers, ps = jobs[f"{RUN}/0"].job_spec.worker_pool_specs
    assert chief.replica_count == 1 and chief.machine_spec.machine_type == "a2-highgpu-1g"
    assert workers.replica_count == 2 and workers.machine_spec.machine_type == "n1-standard-8"
    assert list(ps.container_spec.command) == ["python", "ps.py"] and ps.replica_count == 1
    chief, workers, reducers = jobs[f"{RUN}/1"].job_spec.worker_pool_specs
    assert workers.replica_count == 2 and reducers.replica_count == 2 and "reductionserver" in reducers.container_spec.image_uri


@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
def test_a_swept_app_through_the_launcher(tmp_path, launch, fan_out):
    """A sweep planned by the launcher itself: overrides reach the trial as given."""
    jobs = [list(o) for o in SPECIAL_OVERRIDES[:5]]
    launch_in_process(
        APPS / "faults" / "conf",
        [
            f"hydra.sweep.dir={tmp_path}",
            "hydra.launcher.mode=compile",
            "hydra.launcher.pipeline_root=gs://bkt-1/root",
            "hydra.launcher.trial.image_uri=img",
            "hydra.launcher.trial.entry=command",
            f"hydra.launcher.fan_out={fan_out}",
        ],
        jobs,
    )
    spec = load_pipeline(tmp_path / "pipeline.yaml")
    manifest = {t["output_uri"]: t for t in read_json(tmp_path / "manifest.json")["trials"]}
    sent = [_sent(body) for body, _ in launch(spec)]
    assert len(sent) == len(jobs)
    for job in sent:
        trial = manifest[job.job_spec.base_output_directory.output_uri_prefix]
        assert (
            job.display_name
            == trial["display_name"]
            == names.display_name(f"faults-{trial['number']} {' '.join(trial['overrides'])}")
        )
        (chief,) = job.job_spec.worker_pool_specs
        args = list(chief.container_spec.args)
        assert all(o in args for o in jobs[trial["number"]]), args
        assert dict(job.labels).items() >= SYSTEM_LABELS.items()


def test_a_package_sweep_through_the_launcher(tmp_path, launch):
    """Package mode planned by the launcher: both wheels reach every pool that runs the app."""
    from test_package_mode import make_project, package_overrides

    source = make_project(tmp_path / "project")
    overrides = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.pipeline_root=gs://bkt-1/root",
        *package_overrides(source),
    ]
    launch_in_process(
        source / "trainer" / "conf", overrides, [["x=1", '+note="a b"'], ["x=2", "+p={{$.inputs.parameters['project']}}"]]
    )
    wheels = sorted((tmp_path / "sweep" / "packages").glob("*/*.whl"), key=lambda w: w.name)
    uris = {f"gs://bkt-1/root/packages/{w.parent.name}/{w.name}" for w in wheels}
    sent = [_sent(body) for body, _ in launch(load_pipeline(tmp_path / "sweep" / "pipeline.yaml"))]
    assert len(sent) == 2
    for job in sent:
        (chief,) = job.job_spec.worker_pool_specs
        package = chief.python_package_spec
        assert set(package.package_uris) == uris and len(uris) == 2
        assert package.python_module == "hydra_plugins.vertex_pipelines_launcher.trial_entry"
        assert list(package.args)[-2:] in (["x=1", '+note="a b"'], ["x=2", "+p={{$.inputs.parameters['project']}}"])
