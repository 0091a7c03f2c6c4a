"""Machine-hours: the machine table, the Spot/standard split and pools' replicas (quick), and
what a user sees in summary.json, the report and the final log line of a local sweep and of
a submitted one against the emulator (slow)."""

import html
import json
import logging
import re
import urllib.request
from datetime import datetime

import pytest

from conftest import APPS, launch_in_process, read_json, run_app, submit_overrides
from hydra_vertex_pipelines.components.machine_hours import (
    estimated_cost,
    fmt_hours,
    fmt_money,
    machine_shape,
    pool_machines,
    total,
    usage,
    usage_text,
)
from hydra_vertex_pipelines.components.report import render_markdown
from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings, WorkerPoolSettings
from hydra_vertex_pipelines.pipeline_builder.spec.trials import worker_pool_specs

USAGE_APP = APPS / "usage" / "app.py"
RATES = {"machine_types": {"n1-standard-4": {"spot": 0.04, "standard": 0.2}}, "accelerator_types": {}, "currency": "USD"}


def test_machine_table_lookups():
    assert machine_shape("n1-standard-8").vcpus == 8 and machine_shape("n1-standard-8").memory_gb == 30.0
    assert machine_shape("e2-highmem-4").memory_gb == 32
    a2 = machine_shape("a2-highgpu-4g")
    assert (a2.vcpus, a2.accelerator_type, a2.accelerator_count) == (48, "NVIDIA_TESLA_A100", 4)
    g2 = machine_shape("g2-standard-24")
    assert (g2.vcpus, g2.accelerator_type, g2.accelerator_count) == (24, "NVIDIA_L4", 2)
    assert machine_shape("x9-mystery-4") is None and machine_shape("n1-standard") is None


def test_replicas_across_pools_spot_and_standard_apart():
    settings = TrialSettings(
        machine_type="n1-standard-4",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=2,
        workers=WorkerPoolSettings(replica_count=3, machine_type="n1-highmem-8"),
        reduction_server=WorkerPoolSettings(replica_count=2),
    )
    machines = pool_machines(worker_pool_specs(settings, ["python", "-m", "app"], []))
    assert [(m["machine_type"], m["replica_count"]) for m in machines] == [
        ("n1-standard-4", 1),
        ("n1-highmem-8", 3),
        ("n1-highcpu-16", 2),  # Vertex's reduction server machine
    ]
    spot = usage(machines, "SPOT", 0.5)
    assert spot["machine_hours"] == {"spot": 3.0, "standard": 0.0}
    assert spot["vcpu_hours"]["spot"] == 0.5 * (4 + 3 * 8 + 2 * 16)
    assert spot["accelerator_hours"] == {"NVIDIA_TESLA_T4": {"spot": 1.0, "standard": 0.0}}  # the chief's two T4s
    standard = usage(machines, "FLEX_START", 2.0)  # not Spot: counted with standard
    assert standard["machine_hours"] == {"spot": 0.0, "standard": 12.0}
    both = total([spot, None, standard])
    assert both["machine_hours"] == {"spot": 3.0, "standard": 12.0}
    assert both["by_machine_type"]["n1-highmem-8"] == {"spot": 1.5, "standard": 6.0}
    assert usage_text(both).startswith("15 machine-hours (Spot 3, standard 12), 150 vCPU-hours, 5 NVIDIA_TESLA_T4-hours")


def test_built_in_gpus_count_when_the_spec_names_none():
    u = usage([{"machine_type": "a2-highgpu-2g", "replica_count": 2}], "STANDARD", 1.0)
    assert u["accelerator_hours"] == {"NVIDIA_TESLA_A100": {"spot": 0.0, "standard": 4.0}}


def test_unknown_machine_type_counts_machines_and_says_what_it_cannot():
    u = usage(
        [{"machine_type": "zz-custom-9", "replica_count": 2}, {"machine_type": "n2-standard-2", "replica_count": 1}], None, 1.0
    )
    assert u["machine_hours"]["standard"] == 3.0 and u["vcpu_hours"]["standard"] == 2.0
    assert u["unknown_machine_types"] == ["zz-custom-9"]
    assert "vCPUs unknown for zz-custom-9" in usage_text(u)


def test_estimated_cost_lists_hours_without_a_rate():
    u = total([usage([{"machine_type": "n1-standard-4", "replica_count": 1}], "SPOT", 2.0)])
    u = total(
        [
            u,
            usage(
                [
                    {
                        "machine_type": "n1-standard-4",
                        "replica_count": 1,
                        "accelerator_type": "NVIDIA_TESLA_T4",
                        "accelerator_count": 1,
                    }
                ],
                "STANDARD",
                1.0,
            ),
        ]
    )
    cost = estimated_cost(u, RATES)
    assert (cost["spot"], cost["standard"], cost["total"]) == pytest.approx((0.08, 0.2, 0.28))
    assert cost["unpriced"] == ["NVIDIA_TESLA_T4 (standard)"] and "estimate" in cost["note"]
    assert "estimated cost 0.28 USD from your rates (no rate for NVIDIA_TESLA_T4 (standard))" in usage_text(u, cost)


def _hours(start: str, end: str) -> float:
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds() / 3600


def _machine_hours(summary) -> float:
    return sum(summary["usage"]["totals"]["machine_hours"].values())


@pytest.mark.slow
def test_local_sweep_shows_the_hours_its_trials_recorded(tmp_path):
    rates = "+hydra.launcher.cost.rates.machine_types.n1-standard-4={spot:0.04,standard:0.2}"
    proc = run_app(
        USAGE_APP,
        ["-m", f"hydra.sweep.dir={tmp_path}", "strategy=SPOT,STANDARD", "replicas=1,2", "fail=false,true", "sleep=0.2", rates],
        check=False,
    )
    assert proc.returncode == 1  # the failing trials fail the sweep
    summary = read_json(tmp_path / "summary.json")
    expected = {"spot": 0.0, "standard": 0.0}
    for row in summary["trials"]:
        record = read_json(tmp_path / str(row["number"]) / ".vertex" / "result.json")
        settings = dict(o.split("=", 1) for o in row["overrides"])
        hours = int(settings["replicas"]) * _hours(record["start_time"], record["end_time"])
        tier = "spot" if settings["strategy"] == "SPOT" else "standard"
        assert row["usage"]["machine_hours"][tier] == pytest.approx(hours) and hours > 0
        assert row["usage"]["vcpu_hours"][tier] == pytest.approx(4 * hours)  # n1-standard-4
        expected[tier] += hours
    assert summary["counts"] == {"COMPLETED": 4, "FAILED": 4}  # failed attempts count too
    assert summary["usage"]["totals"]["machine_hours"] == pytest.approx(expected)
    cost = summary["usage"]["estimated_cost"]
    assert cost["total"] == pytest.approx(0.04 * expected["spot"] + 0.2 * expected["standard"])
    final = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "trials completed" in line][-1]
    shown = f"{fmt_hours(sum(expected.values()))} machine-hours (Spot {fmt_hours(expected['spot'])}, standard {fmt_hours(expected['standard'])})"
    vcpu = fmt_hours(4 * sum(expected.values()))
    assert final.endswith(
        f"4 of 8 trials completed; {shown}, {vcpu} vCPU-hours; estimated cost {fmt_money(cost['total'])} USD from your rates"
    )
    report = (tmp_path / "report.html").read_text()
    assert "<th>machine-hours</th>" in report and f"from the trial records: {shown}" in report
    spot_row = next(r for r in summary["trials"] if "strategy=SPOT" in r["overrides"])
    spot_hours = fmt_hours(sum(spot_row["usage"]["machine_hours"].values()))
    assert re.search(
        rf'id="trial-{spot_row["number"]}".*?<td class="num machine-hours">{re.escape(html.escape(spot_hours))} \(Spot\)',
        report,
    )
    markdown = render_markdown(summary)
    assert "| machine-hours |" in markdown and f"from the trial records: {shown}" in markdown


def _emulated_custom_jobs(api_endpoint: str):
    url = f"{api_endpoint}/v1/projects/local/locations/us-central1/customJobs?pageSize=1000"
    with urllib.request.urlopen(url) as reply:
        return json.load(reply)["customJobs"]


@pytest.mark.slow
def test_submitted_sweep_shows_the_hours_its_custom_jobs_recorded(emulators, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        *submit_overrides(emulators),
        "hydra.launcher.trial.entry=command",
        f"hydra.launcher.trial.command=[python,{USAGE_APP}]",
        "sleep=0.2",
    ]
    jobs = [["strategy=SPOT", "replicas=2"], ["strategy=STANDARD", "replicas=1", "fail=true"]]
    returns = launch_in_process(USAGE_APP.parent / "conf", overrides, jobs)
    assert returns[0].return_value == 2.0
    summary = read_json(tmp_path / "summary.json")
    run_id = read_json(tmp_path / "manifest.json")["run_id"]
    recorded = [j for j in _emulated_custom_jobs(emulators["api_endpoint"]) if j.get("labels", {}).get("hydra-run") == run_id]
    assert len(recorded) == 2
    expected = {"spot": 0.0, "standard": 0.0}
    rows = {r["number"]: r for r in summary["trials"]}
    for job in recorded:
        replicas = sum(int(p.get("replicaCount", 0)) for p in job["jobSpec"]["workerPoolSpecs"])
        tier = "spot" if job["jobSpec"].get("scheduling", {}).get("strategy") == "SPOT" else "standard"
        hours = replicas * _hours(job["startTime"], job["endTime"])
        expected[tier] += hours
        row = rows[0 if tier == "spot" else 1]  # trial 0 ran on Spot with 2 replicas, trial 1 failed on standard
        assert row["usage"]["machine_hours"][tier] == pytest.approx(hours) and row["usage"]["custom_jobs"] == 1
    assert rows[1]["status"] == "FAILED"
    assert summary["usage"]["source"] == "CustomJobs' startTime and endTime"
    assert summary["usage"]["totals"]["machine_hours"] == pytest.approx(expected)
    assert expected["spot"] > 0 and expected["standard"] > 0
    # The CustomJob runs longer than the trial process inside it.
    assert _machine_hours(summary) >= sum(summary["usage"]["from_trial_records"]["machine_hours"].values())
    assert html.escape("from the CustomJobs' startTime and endTime") in (tmp_path / "report.html").read_text()
    final = [r.getMessage() for r in caplog.records if "trials completed" in r.getMessage()][-1]
    assert final == f"Run {run_id} (PipelineJob {run_id}): 1 of 2 trials completed; " + usage_text(summary["usage"]["totals"])
