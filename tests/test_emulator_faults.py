"""The emulator, started from its command line with a fault plan, fails CustomJobs the way
Vertex fails them: 429s at creation, stockouts, expired Flex-start waits, internal errors
and Spot preemptions (SIGTERM, then SIGKILL after the grace), by rule and by seeded rate;
the real aiplatform client and gcpc's launcher see them as they would see Vertex's."""

import json
import signal
import time
from typing import Any, Dict, Optional, Sequence

import pytest

from conftest import APPS, alive, read_json, run_app, wait_for
from test_emulator_process import Emulator

pytestmark = pytest.mark.slow  # starts the emulator's command line

FAULTS_APP = APPS / "faults"
PARENT = "projects/local/locations/us-central1"
GRACE = 1.0
PLAN = {
    "seed": 11,
    "preemption_grace": GRACE,
    "faults": [
        {"kind": "quota", "display_name": r"x=1$|^quota-"},
        {"kind": "capacity", "display_name": r"x=2$|^capacity-"},
        {"kind": "internal", "display_name": r"x=3$|^internal-"},
        {"kind": "flex_start_expired"},
        {"kind": "preempt", "display_name": "^preempt-", "after": 0.5},
        {"kind": "capacity", "display_name": "^ruled$", "attempt": 2},
        {"kind": "quota", "display_name": "^drawn-", "rate": 0.5},
    ],
}
# Ignores SIGTERM (noting when it came), then says it is alive every 50 ms until killed.
STUBBORN = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
def put(name, text):  # whole or not at all: a SIGKILL may land mid-write
    (out / (name + ".tmp")).write_text(text)
    os.replace(out / (name + ".tmp"), out / name)
put("pid", str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *a: put("term", repr(time.time())))
while True:
    put("alive", repr(time.time()))
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One emulator process for every rule-driven case, its plan from a file."""
    root = tmp_path_factory.mktemp("faults")
    plan = root / "faults.json"
    plan.write_text(json.dumps(PLAN))
    started = Emulator(root / "data", args=["--faults", str(plan)])
    started.root = root
    yield started
    started.stop(signal.SIGTERM)


def job_client(emulator: Emulator) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    return aiplatform.gapic.JobServiceClient(
        client_options={"api_endpoint": emulator.api}, transport="rest", credentials=AnonymousCredentials()
    )


def custom_job(name: str, code: str = "pass", args: Sequence[str] = (), strategy: Optional[str] = None) -> Dict[str, Any]:
    pool = {
        "replica_count": 1,
        "machine_spec": {"machine_type": "n1-standard-4"},
        "container_spec": {"image_uri": "local", "command": ["python", "-c", code], "args": list(args)},
    }
    spec: Dict[str, Any] = {"worker_pool_specs": [pool]}
    if strategy:
        spec["scheduling"] = {"strategy": strategy}
    return {"display_name": name, "job_spec": spec}


def ended(client: Any, name: str) -> Any:
    found: Dict[str, Any] = {}

    def done() -> bool:
        found["job"] = client.get_custom_job(name=name)
        return found["job"].state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")

    wait_for(done, 60, f"CustomJob {name} to end")
    return found["job"]


def table(kind: str, **values: str) -> Any:
    from hydra_vertex_pipelines.pipeline_builder.emulator.faults import FAULT_ERRORS

    error = FAULT_ERRORS[kind]
    return error.code, error.message.format(**values)


def test_a_sweep_meets_quota_capacity_and_internal_errors_through_gcpc_launcher(emulator, tmp_path):
    sweep = tmp_path / "sweep"
    launch = run_app(
        FAULTS_APP / "app.py",
        [
            *emulator.faults_app_submit("sweeps"),
            f"hydra.sweep.dir={sweep}",
            "x=1,2,3,4",
        ],
        check=False,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )
    assert launch.returncode != 0, launch.stdout + launch.stderr  # three trials failed
    manifest = read_json(sweep / "manifest.json")
    run = emulator.request(f"/v1/{manifest['vertex']['resource_name']}")
    tasks = {t["taskName"]: t for t in run["jobDetail"]["taskDetails"]}
    by_x = {t["display_name"].rsplit("x=", 1)[1]: tasks[t["task_name"]] for t in manifest["trials"]}
    assert by_x["4"]["state"] == "SUCCEEDED"
    assert {x: by_x[x]["state"] for x in "123"} == {x: "FAILED" for x in "123"}
    # A 429 at creation: gcpc's launcher does not retry it; the task's error carries it.
    quota = by_x["1"]["error"]["message"]
    assert "429" in quota and table("quota", metric="custom_model_training_cpus")[1] in quota
    jobs = {j["displayName"]: j for j in emulator.request(f"/v1/{PARENT}/customJobs?pageSize=1000")["customJobs"]}
    shown = {t["display_name"].rsplit("x=", 1)[1]: t["display_name"] for t in manifest["trials"]}
    assert shown["1"] not in jobs  # refused: never created
    for x, kind in (("2", "capacity"), ("3", "internal")):
        job = jobs[shown[x]]
        code, message = table(kind, region="us-central1")
        assert (job["state"], job["error"]) == ("JOB_STATE_FAILED", {"code": code, "message": message})
        assert "startTime" not in job  # it never ran
        assert message in by_x[x]["error"]["message"]
    # gcpc's launcher's own verdict, as on Vertex: its RuntimeError (code 13 is no user error), not its ValueError.
    assert "Job failed with error state: 5." in _launcher_log(emulator, by_x["3"]["taskName"])
    assert "value error" not in _launcher_log(emulator, by_x["3"]["taskName"])


def _launcher_log(emulator: Emulator, task_name: str) -> str:
    """gcpc's launcher's log of one task (kept in the task's folder)."""
    (log,) = (emulator.root / "data").rglob(f"work/{task_name}/launcher.log")
    return log.read_text()


def test_capacity_internal_and_flex_start_failures_end_with_their_errors(emulator):
    from google.api_core import exceptions

    client = job_client(emulator)
    for kind in ("capacity", "internal"):
        job = ended(client, client.create_custom_job(parent=PARENT, custom_job=custom_job(f"{kind}-direct")).name)
        assert (job.state.name, job.error.code, job.error.message) == ("JOB_STATE_FAILED", *table(kind, region="us-central1"))
    flex = ended(client, client.create_custom_job(parent=PARENT, custom_job=custom_job("flex", strategy="FLEX_START")).name)
    assert (flex.state.name, flex.error.code, flex.error.message) == (
        "JOB_STATE_FAILED",
        *table("flex_start_expired", max_wait="86400s"),
    )
    standard = ended(client, client.create_custom_job(parent=PARENT, custom_job=custom_job("flex-less")).name)
    assert standard.state.name == "JOB_STATE_SUCCEEDED"  # only a Flex-start job waits for resources
    with pytest.raises(exceptions.TooManyRequests) as refused:
        client.create_custom_job(parent=PARENT, custom_job=custom_job("quota-direct"))
    assert refused.value.code == 429 and refused.value.message.endswith(
        ": " + table("quota", metric="custom_model_training_cpus")[1]
    )


def test_a_preempted_replica_gets_sigterm_then_sigkill_after_the_grace(emulator, tmp_path):
    client = job_client(emulator)
    spot = tmp_path / "spot"
    name = client.create_custom_job(parent=PARENT, custom_job=custom_job("preempt-spot", STUBBORN, [str(spot)], "SPOT")).name
    # The same rule leaves a standard VM alone: Vertex preempts Spot VMs only.
    other = client.create_custom_job(
        parent=PARENT, custom_job=custom_job("preempt-standard", "import time; time.sleep(1.5)", [], "STANDARD")
    ).name
    job = ended(client, name)
    assert (job.state.name, job.error.code, job.error.message) == (
        "JOB_STATE_FAILED",
        *table("preempt", replica="workerpool0-0"),
    ), job.error.message
    termed, last_alive = float((spot / "term").read_text()), float((spot / "alive").read_text())
    assert last_alive - termed >= GRACE - 0.1  # it lived through the grace after its SIGTERM...
    assert not alive(int((spot / "pid").read_text()))  # ...then was killed
    assert ended(client, other).state.name == "JOB_STATE_SUCCEEDED"


def test_a_rule_by_display_name_and_attempt_hits_only_its_jobs(emulator):
    client = job_client(emulator)
    states = []
    for name in ("ruled", "ruled", "ruled", "ruled-other", "ruled-other"):
        job = ended(client, client.create_custom_job(parent=PARENT, custom_job=custom_job(name)).name)
        states.append((name, job.state.name, job.error.message))
    failed = ("JOB_STATE_FAILED", table("capacity", region="us-central1")[1])
    assert states == [
        ("ruled", "JOB_STATE_SUCCEEDED", ""),
        ("ruled", *failed),  # its 2nd creation only
        ("ruled", "JOB_STATE_SUCCEEDED", ""),
        ("ruled-other", "JOB_STATE_SUCCEEDED", ""),
        ("ruled-other", "JOB_STATE_SUCCEEDED", ""),
    ]


def test_the_same_seed_gives_the_same_faults(emulator):
    from google.api_core import exceptions

    from hydra_vertex_pipelines.pipeline_builder.emulator.fault_spec import load_plan
    from hydra_vertex_pipelines.pipeline_builder.emulator.faults import Faults

    client = job_client(emulator)
    names = [f"drawn-{i}" for i in range(16)]
    refused = set()
    for name in reversed(names):  # another order than below: the draw does not depend on it
        try:
            client.create_custom_job(parent=PARENT, custom_job=custom_job(name))
        except exceptions.TooManyRequests:
            refused.add(name)
    assert 0 < len(refused) < len(names)  # a rate of 0.5 hits some, not all

    def drawn(seed: int) -> set:
        faults = Faults(load_plan(emulator.root / "faults.json", seed=seed))
        return {n for n in names if faults.on_create({"displayName": n}, "us-central1")[0] is not None}

    assert drawn(PLAN["seed"]) == refused  # the same seed, in another process: the same faults
    assert drawn(PLAN["seed"] + 1) != refused


def test_the_job_creation_quota_answers_429_beyond_its_rate(tmp_path):
    from google.api_core import exceptions

    started = Emulator(tmp_path / "data", args=["--job-creation-quota", "3 per minute"])
    try:
        assert started.wait_for(r"Faults: none \(seed 0, .*3 job creations per minute\)")
        client = job_client(started)
        created = [client.create_custom_job(parent=PARENT, custom_job=custom_job(f"fast-{i}")).name for i in range(3)]
        start = time.monotonic()
        with pytest.raises(exceptions.TooManyRequests) as refused:
            client.create_custom_job(parent=PARENT, custom_job=custom_job("fast-3"))
        assert time.monotonic() - start < 60  # within the same minute
        assert refused.value.message.endswith(": " + table("job_creation_quota", limit="3")[1])
        assert [ended(client, n).state.name for n in created] == ["JOB_STATE_SUCCEEDED"] * 3
    finally:
        started.stop(signal.SIGTERM)


def test_a_bad_fault_plan_is_refused_naming_the_field(tmp_path):
    import subprocess

    from conftest import CLI

    bad = subprocess.run(
        [CLI, "emulator", "--data-dir", str(tmp_path), "--port", "0", "--gcs-port", "0", "--fault", "preempt,rate=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "rate 2.0 must be a probability in (0, 1]" in bad.stderr
