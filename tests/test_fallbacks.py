"""trial.fallbacks: the settings a trial's next attempt runs on after a preemption or a
stockout, checked when the sweep is planned, chosen by recovery, and shown in the summary
and the report; end to end against the emulator started from its command line."""

import signal

import pytest

from conftest import APPS, launch_in_process, read_json, run_app
from test_emulator_process import Emulator

FAULTS = APPS / "faults"
PER_TRIAL = APPS / "per_trial"
T4 = {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4"}


def l4_trial(fallbacks, strategy: str = "SPOT"):
    from hydra_vertex_pipelines.pipeline_builder.spec.settings import TrialSettings
    from hydra_vertex_pipelines.pipeline_builder.spec.trials import build_trial
    from hydra_vertex_pipelines.pipeline_builder.spec.validation import check_trial_settings

    settings = TrialSettings(
        image_uri="img",
        machine_type="g2-standard-8",
        accelerator_type="NVIDIA_L4",
        accelerator_count=1,
        strategy=strategy,
        fallbacks=fallbacks,
    )
    check_trial_settings(settings, "hydra.launcher.trial")  # the README's example is valid
    return build_trial(
        number=3,
        job_id="run_3",
        overrides=["x=3"],
        settings=settings,
        command=["python", "train.py"],
        args=["x=3"],
        output_uri="gs://b/run/3",
        name_prefix="app",
    )


def machine(trial) -> dict:
    return trial.worker_pool_specs[0]["machine_spec"]


@pytest.mark.parametrize(
    "kinds, expected",
    [
        ((), None),
        (("quota", "internal", "unknown"), None),  # says nothing about the machine
        (("preempted",), 0),
        (("quota", "capacity"), 0),
        (("capacity", "quota"), 0),  # a quota error after a stockout does not move on
        (("capacity", "preempted"), 1),
        (("flex_start_expired",), 0),
        (("capacity", "capacity", "capacity", "capacity"), 1),  # the last fallback stays
        (("capacity", None), 0),
    ],
)
def test_the_fallback_an_attempt_runs_counts_the_failures_that_say_the_machine_was_not_there(kinds, expected):
    from hydra_vertex_pipelines.pipeline_builder.spec.fallbacks import fallback_index

    assert fallback_index(2, kinds) == expected
    assert fallback_index(0, ("capacity",)) is None  # no fallbacks: always its own settings


def test_an_attempt_on_a_fallback_swaps_only_precomputed_machines_and_scheduling():
    import json

    from hydra_vertex_pipelines.pipeline_builder.spec.fallbacks import for_attempt, ran_on

    trial = l4_trial([{"strategy": "STANDARD"}, T4])
    json.dumps(trial.to_dict())  # plain data, for a manifest
    assert for_attempt(trial, ("quota",)) is trial and ran_on(trial) is None
    first = for_attempt(trial, ("preempted",))
    assert machine(first) == {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1}
    assert first.job_settings["strategy"] == "STANDARD" and trial.job_settings["strategy"] == "SPOT"
    second = for_attempt(trial, ("preempted", "capacity"))
    assert machine(second) == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}
    assert second.job_settings["strategy"] == "STANDARD"  # cumulative: fallback 1 on top of fallback 0
    assert ran_on(second) == {"index": 1, "settings": {"strategy": "STANDARD", **T4}}
    for attempt in (first, second):
        assert (
            attempt.number,
            attempt.display_name,
            attempt.output_uri,
            attempt.output_dir,
            attempt.worker_pool_specs[0]["container_spec"],
        ) == (
            trial.number,
            trial.display_name,
            trial.output_uri,
            trial.output_dir,
            trial.worker_pool_specs[0]["container_spec"],
        )
    with pytest.raises(ValueError, match="already runs fallback 1"):
        for_attempt(second, ("capacity",))


def test_a_recovery_attempt_runs_each_recovered_trial_on_its_fallback_and_lists_it():
    """Trial 0 completes; trial 1's L4s are out of capacity; its second attempt runs on T4s and completes."""
    from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source
    from hydra_vertex_pipelines.pipeline_builder.recovery import Recovery, RecoverySettings, Round
    from hydra_vertex_pipelines.pipeline_builder.spec.sweep import SweepSpec

    capacity = Failure(FailureKind.CAPACITY, Source.CUSTOM_JOB, 8, "Resources are insufficient in region")
    trials = tuple(l4_trial([T4]).__class__(**{**vars(l4_trial([T4])), "number": n}) for n in range(2))
    sweep = SweepSpec("app", "run", "gs://b", "gs://b/run", trials, "img")

    def row(n: int, status: str, failure) -> dict:
        attempt = {"attempt": 1, "status": status, "failure": failure and failure.to_json()}
        return {"number": n, "status": status, "failure": failure and failure.to_json(), "attempts": [attempt]}

    rows = [row(0, "COMPLETED", None), row(1, "MISSING", capacity)]
    first = Round({0: "done", 1: "failed"}, frozenset({0}), {"trials": rows, "counts": {}}, {1: capacity}, "jobs/1")
    sent = []

    def attempt(number: int, attempt_sweep: SweepSpec) -> Round:
        sent.append({t.number: machine(t)["accelerator_type"] for t in attempt_sweep.trials})
        rows = [row(0, "COMPLETED", None), row(1, "COMPLETED", None)]
        return Round({0: "done", 1: "done"}, frozenset({0, 1}), {"trials": rows, "counts": {}}, {}, "jobs/2")

    recovery = Recovery(sweep, RecoverySettings(3, frozenset({FailureKind.CAPACITY}), 0.0), first)
    recovery.run(attempt)
    assert recovery.ordered() == ["done", "done"]
    assert sent == [{0: "NVIDIA_L4", 1: "NVIDIA_TESLA_T4"}]  # trial 0 is a cache hit: unchanged
    final = {t["number"]: t for t in recovery.final_summary()["trials"]}
    fallback = {"index": 0, "settings": T4}
    assert [(a["attempt"], a.get("fallback")) for a in final[1]["attempts"]] == [(1, None), (2, fallback)]
    assert final[1]["fallback"] == fallback and final[0].get("fallback") is None


def test_the_report_says_which_settings_each_trial_finally_ran_on():
    from hydra_vertex_pipelines.components.report import md_cell, render_html, render_markdown

    def row(n: int, fallback) -> dict:
        return {
            "number": n,
            "status": "COMPLETED",
            "overrides": [f"x={n}"],
            "objective": float(n),
            "return_value": float(n),
            "output_dir": f"/tmp/{n}",
            "fallback": fallback,
        }

    summary = {
        "trials": [row(0, None), row(1, {"index": 0, "settings": T4})],
        "counts": {"COMPLETED": 2},
        "objective": {"key": None, "direction": "minimize"},
        "best": None,
        "swept": {"x": {"numeric": True, "values": ["0", "1"]}},
        "fixed": {},
    }
    shown = "fallbacks[0]: machine_type=n1-standard-8, accelerator_type=NVIDIA_TESLA_T4"
    for text in (render_html(summary), render_markdown(summary)):
        assert "ran on" in text and "its own settings" in text
    assert shown in render_html(summary) and md_cell(shown) in render_markdown(summary)
    summary["trials"] = [row(0, None)]
    assert "ran on" not in render_html(summary)  # no trial used a fallback: no column


def test_fault_rules_match_the_chiefs_machine_or_accelerator():
    from hydra_vertex_pipelines.pipeline_builder.emulator.fault_spec import load_plan
    from hydra_vertex_pipelines.pipeline_builder.emulator.faults import Faults, FaultSpecError

    faults = Faults(load_plan(options=["capacity,accelerator_type=NVIDIA_L4", "internal,machine_type=n1-standard-16"]))

    def create(machine_type: str, accelerator=None):
        spec = {"machineType": machine_type, **({"acceleratorType": accelerator} if accelerator else {})}
        refused, fault = faults.on_create({"displayName": "t", "jobSpec": {"workerPoolSpecs": [{"machineSpec": spec}]}}, "r")
        return fault and fault.rule.kind.value

    assert [create("g2-standard-8", "NVIDIA_L4"), create("n1-standard-8", "NVIDIA_TESLA_T4"), create("n1-standard-16")] == [
        "capacity",
        None,
        "internal",
    ]
    with pytest.raises(FaultSpecError, match="accelerator_type 'NVIDIA L4' must be a machine or accelerator type name"):
        load_plan(options=["capacity,accelerator_type=NVIDIA L4"])


COMPILE = ["hydra.launcher.mode=compile", "hydra.launcher.pipeline_root=gs://bkt/root", "hydra.launcher.trial.image_uri=img"]
L4 = [
    "hydra.launcher.trial.machine_type=g2-standard-8",
    "hydra.launcher.trial.accelerator_type=NVIDIA_L4",
    "hydra.launcher.trial.accelerator_count=1",
]


@pytest.mark.parametrize(
    "fallbacks, message",
    [
        (
            "[{machine_typ:n1-standard-8}]",
            r"hydra.launcher.trial.fallbacks\[0\].machine_typ='n1-standard-8' \(trial 0: x=1\) is not accepted: "
            r"a setting a fallback may change: machine_type, .*Did you mean machine_type\?",
        ),
        (
            "[{strategy:STANDARD},{image_uri:other}]",
            r"fallbacks\[1\].image_uri='other' .*is not accepted: .*not what it runs",
        ),
        (
            "[{accelerator_type:NVIDIA_TESLA_T4}]",  # the machine must change too: L4s are built into g2
            r"fallbacks\[0\].accelerator_type='NVIDIA_TESLA_T4' .*is not accepted: NVIDIA_L4 with accelerator_count=1: "
            r"the GPUs built into hydra.launcher.trial.fallbacks\[0\].machine_type=g2-standard-8",
        ),
        ("[{strategy:CHEAP}]", r"fallbacks\[0\].strategy='CHEAP' .*is not accepted: one of FLEX_START, SPOT, STANDARD"),
        (
            "[{workers:{env:{A:1}}}]",
            r"fallbacks\[0\].workers.env=.*is not accepted: a setting a fallback may change: machine_type",
        ),
        ("[{}]", r"fallbacks\[0\]=\{\} .*is not accepted: a mapping of settings to change"),
    ],
)
def test_a_bad_fallback_is_refused_when_planned_before_anything_is_written(tmp_path, fallbacks, message):
    from hydra_plugins.vertex_pipelines_launcher._errors import LauncherConfigError

    overrides = [f"hydra.sweep.dir={tmp_path}", *COMPILE, *L4, f"hydra.launcher.trial.fallbacks={fallbacks}"]
    with pytest.raises(LauncherConfigError, match=message):
        launch_in_process(FAULTS / "conf", overrides, [["x=1"]])
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_each_trial_checks_its_fallbacks_on_its_own_settings(tmp_path):
    """Per-trial settings: the large model's A100 trial may fall back to T4s; the small
    model's CPU trial has no accelerator count for them, and the error names that trial."""
    from hydra_plugins.vertex_pipelines_launcher._errors import LauncherConfigError

    overrides = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.mode=compile",
        "hydra.launcher.trial.fallbacks=[{machine_type:n1-standard-8,accelerator_type:NVIDIA_TESLA_T4}]",
    ]
    launch_in_process(PER_TRIAL / "conf", overrides, [["model=large"]])
    with pytest.raises(LauncherConfigError, match=r"fallbacks\[0\].accelerator_count=0 \(trial 1: model=small\) is not accepted"):
        launch_in_process(
            PER_TRIAL / "conf", [f"hydra.sweep.dir={tmp_path}/2", *overrides[1:]], [["model=large"], ["model=small"]]
        )


# ---- end to end: the emulator's L4s are always out of capacity ----------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = Emulator(tmp_path_factory.mktemp("fallbacks") / "data", args=["--fault", "capacity,accelerator_type=NVIDIA_L4"])
    yield started
    started.stop(signal.SIGTERM)


@pytest.mark.slow  # the emulator's command line, a sweep in a subprocess, two PipelineJobs
@pytest.mark.parametrize("fan_out", ["tasks", "parallel_for"])
def test_a_trial_whose_accelerator_is_always_out_of_capacity_completes_on_its_fallback(emulator, tmp_path, fan_out):
    proc = run_app(
        FAULTS / "app.py",
        [
            *emulator.faults_app_submit("fallbacks"),
            *L4,
            "hydra.launcher.trial.fallbacks=[{machine_type:n1-standard-8,accelerator_type:NVIDIA_TESLA_T4}]",
            "hydra.launcher.recovery.max_attempts=2",
            f"hydra.sweep.dir={tmp_path}",
            f"hydra.launcher.fan_out={fan_out}",
            "x=1,2",
        ],
        check=False,
        STORAGE_EMULATOR_HOST=emulator.gcs_url,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = "fallbacks[0]: machine_type=n1-standard-8, accelerator_type=NVIDIA_TESLA_T4"
    assert "trial 0 (capacity), 1 (capacity)" in proc.stdout and f"Recovery: trial 1 runs on {shown}" in proc.stdout
    summary = read_json(tmp_path / "summary.json")
    assert summary["counts"] == {"COMPLETED": 2}
    assert [t["return_value"] for t in summary["trials"]] == [1.0, 2.0]
    fallback = {"index": 0, "settings": {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4"}}
    for trial in summary["trials"]:
        assert [(a["attempt"], a["status"], (a["failure"] or {}).get("kind"), a.get("fallback")) for a in trial["attempts"]] == [
            (1, "MISSING", "capacity", None),
            (2, "COMPLETED", None, fallback),
        ]
        assert trial["fallback"] == fallback
        # Machine-hours come from the CustomJobs: the L4 job never ran, the T4 job did.
        assert set(trial["usage"]["by_machine_type"]) == {"n1-standard-8"}, trial["usage"]
        assert set(trial["usage"]["accelerator_hours"]) == {"NVIDIA_TESLA_T4"} and trial["usage"]["custom_jobs"] == 1
    assert len(read_json(tmp_path / "manifest.json")["vertex"]["jobs"]) == 2
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "ran on" in report and report.count(shown) == 2


def test_fallbacks_that_no_attempt_can_run_on_are_named_in_a_warning(tmp_path, caplog):
    overrides = [f"hydra.sweep.dir={tmp_path}", *COMPILE, "hydra.launcher.trial.fallbacks=[{strategy:STANDARD}]"]
    launch_in_process(FAULTS / "conf", overrides, [["x=1"]])
    assert "hydra.launcher.trial.fallbacks are set, but no attempt of this sweep can run on them" in caplog.text
    caplog.clear()
    launch_in_process(FAULTS / "conf", [f"hydra.sweep.dir={tmp_path}/2", *COMPILE], [["x=1"]])
    assert "fallbacks" not in caplog.text
