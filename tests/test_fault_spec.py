"""Fault plans as a user writes them: the README's example file, `--fault` options, and
bad input named by field, value and what is accepted; seeded draws that do not depend on
the order jobs are created in."""

import re

import pytest

from conftest import REPO
from hydra_vertex_pipelines.pipeline_builder.emulator.fault_spec import load_plan
from hydra_vertex_pipelines.pipeline_builder.emulator.faults import FaultKind, FaultRule, Faults, FaultSpecError


def readme_plan(tmp_path):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"#### Rehearsing Vertex's failures: faults.*?```yaml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "faults.yaml"
    path.write_text(block)
    return path


def test_the_readme_plan_reads_as_it_says(tmp_path):
    plan = load_plan(readme_plan(tmp_path))
    assert (plan.seed, plan.preemption_grace, plan.job_creation_quota) == (7, 30.0, 60)
    assert plan.rules == (
        FaultRule(FaultKind.PREEMPT, 0.3, None, (1,), 5.0),
        FaultRule(FaultKind.CAPACITY, 1.0, r"lr=0\.01", (1, 2)),
        FaultRule(FaultKind.QUOTA, 0.05),
    )
    both = load_plan(readme_plan(tmp_path), ["internal,display_name=x=3$"], seed=8, grace=1, quota="5 per minute")
    assert (both.seed, both.preemption_grace, both.job_creation_quota) == (8, 1.0, 5)
    assert both.rules[-1] == FaultRule(FaultKind.INTERNAL, display_name="x=3$")
    assert load_plan(options=["quota,attempt=1|3"]).rules[0].attempts == (1, 3)
    assert load_plan() is None  # nothing asked: no faults


@pytest.mark.parametrize(
    "option, message",
    [
        ("spill", "kind 'spill' is not one of preempt, quota, capacity, flex_start_expired, internal"),
        ("preempt,rate=0", "rate 0.0 must be a probability in (0, 1]"),
        ("preempt,rate=often", "rate 'often' is not a number"),
        ("capacity,after=3", "after applies to kind preempt only, not capacity"),
        ("quota,attempt=0", "attempt '0' must be a number >= 1"),
        ("quota,display_name=(", "display_name '(' is not a regular expression"),
        ("quota,when=now", "unknown field(s) ['when']; accepted: kind, rate, display_name, attempt, after"),
        ("quota,rate", "'rate' is not key=value"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(option, message):
    with pytest.raises(FaultSpecError) as refused:
        load_plan(options=[option])
    assert message in str(refused.value) and option in str(refused.value)


def test_a_bad_quota_is_refused():
    with pytest.raises(FaultSpecError, match=r"job_creation_quota '60 per hour': expected 'N per minute'"):
        load_plan(quota="60 per hour")


def test_the_same_seed_draws_the_same_faults_in_any_order():
    names = [f"train-{i} lr={i}" for i in range(40)]

    def drawn(seed, order):
        faults = Faults(load_plan(options=["quota,rate=0.3"], seed=seed))
        return {n for n in order if faults.on_create({"displayName": n}, "us-central1")[0] is not None}

    first = drawn(3, names)
    assert first == drawn(3, list(reversed(names))) and 0 < len(first) < len(names)
    assert first != drawn(4, names)
