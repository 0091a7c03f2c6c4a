"""The compile cache gives, for a sweep compiled before, exactly what compiling gives.

Each case compiles a sweep once (kept), then asks for the same sweep under another run id
and batch tag, as a second run of the same command makes it: the pipeline spec and the
pipeline.yaml text must equal a fresh compile of that second sweep, byte for byte. A
changed sweep, other versions or a file that holds a run name in another form are misses.
"""

import dataclasses
import os
import time
from datetime import datetime, timezone
from typing import Any, List

import pytest

from hydra_vertex_pipelines.pipeline_builder import compile_cache
from hydra_vertex_pipelines.pipeline_builder.compile_cache import CompileCache, cache_folder, compile_with_cache
from hydra_vertex_pipelines.pipeline_builder.pipeline import compiled_pipeline
from hydra_vertex_pipelines.pipeline_builder.spec import SweepSpec, TrialSettings, build_trial, names
from hydra_vertex_pipelines.pipeline_builder.spec.sweep import INLINE_TRIALS_LIMIT

OVERRIDES = [["+lr=0.1", "+msg='hello world'"], ["+lr=0.01", "+name=José 東京"], ["+lr=1e-3", "+p={{$}}"]]


def _run_id(second: int) -> str:
    return names.run_id("train", "/sweeps/a", datetime(2026, 12, 5, 4, 0, second, tzinfo=timezone.utc))


def _sweep(run_id: str, tag: str = "", overrides: List[List[str]] = OVERRIDES, **kw: Any) -> SweepSpec:
    run_root = f"gs://bkt/runs/{run_id}"
    settings = kw.pop("settings", TrialSettings(image_uri="us-docker.pkg.dev/p/r/train:1"))
    trials = tuple(
        build_trial(
            number=i,
            job_id=f"{run_id}_{i}",
            overrides=o,
            settings=dataclasses.replace(settings, disable_retries=kw.get("fan_out") != "parallel_for" and i == 1),
            command=["python", "-m", "hydra_plugins.vertex_pipelines_launcher.trial_entry"],
            args=["--num", str(i), "--run-id", run_id, "--sweep-dir", f"/gcs/bkt/runs/{run_id}", "--", "train.py", *o],
            output_uri=f"{run_root}/{i}",
            name_prefix="train",
            labels={"hydra-app": "train", "hydra-run": run_id},
        )
        for i, o in enumerate(overrides)
    )
    return SweepSpec(
        name="train", run_id=run_id, pipeline_root="gs://bkt/runs", run_root=run_root, trials=trials,
        collector_image="us-docker.pkg.dev/p/r/train:1", tag=tag, **kw,
    )  # fmt: skip


SCENARIOS = {
    "tasks": {},
    "parallel_for": {"fan_out": "parallel_for", "parallelism": 2},
    "objective and cost": {"objective_key": "val.loss", "objective_direction": "maximize", "cost_rates": '{"machine_types": {}}'},
    "trial list in a file": {"overrides": [[f"+x={i}", "+pad=" + "p" * 400] for i in range(2 * INLINE_TRIALS_LIMIT // 400)]},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_kept_pipeline_is_what_compiling_gives(tmp_path, scenario):
    first = _sweep(_run_id(1), **SCENARIOS[scenario])
    assert compile_with_cache(first, tmp_path)[2] is False
    assert len(list(tmp_path.glob("*.json"))) == 1
    for again in (_sweep(_run_id(2), tag="-2", **SCENARIOS[scenario]), _sweep(_run_id(3), tag="-4-3", **SCENARIOS[scenario])):
        spec, document, hit = compile_with_cache(again, tmp_path)
        assert hit is True
        fresh_spec, fresh_document = compiled_pipeline(again)
        assert document == fresh_document
        assert spec == fresh_spec
        assert list(spec["root"]["dag"]["tasks"]) == list(fresh_spec["root"]["dag"]["tasks"])  # the runner's order
        assert again.run_id in document and first.run_id not in document


def test_a_changed_sweep_is_compiled_again(tmp_path):
    compile_with_cache(_sweep(_run_id(1)), tmp_path)
    changed = _sweep(_run_id(2), overrides=[OVERRIDES[0], ["+lr=0.02", "+name=José 東京"], OVERRIDES[2]])
    spec, document, hit = compile_with_cache(changed, tmp_path)
    assert hit is False
    assert document == compiled_pipeline(changed)[1]
    other_machine = _sweep(
        _run_id(3), settings=TrialSettings(image_uri="us-docker.pkg.dev/p/r/train:1", machine_type="n1-standard-8")
    )
    assert compile_with_cache(other_machine, tmp_path)[2] is False


def test_other_installed_versions_miss(tmp_path, monkeypatch):
    compile_with_cache(_sweep(_run_id(1)), tmp_path)
    monkeypatch.setattr(compile_cache, "_versions", '{"kfp": "0.0.0"}')
    assert compile_with_cache(_sweep(_run_id(2)), tmp_path)[2] is False


def test_a_file_holding_a_name_in_another_form_is_never_kept(tmp_path, monkeypatch):
    """A compiled file that held the run id cut short would carry the first run's id into
    the next: the probe compile shows it is no template, and nothing is kept."""

    def with_cut_id(sweep: SweepSpec) -> Any:
        spec, document = compiled_pipeline(sweep)
        return spec, document + f"# {sweep.run_id[:-3]}\n"

    monkeypatch.setattr(compile_cache, "compiled_pipeline", with_cut_id)
    sweep = _sweep(_run_id(1))
    assert CompileCache(tmp_path).put(sweep, with_cut_id(sweep)) is False
    assert compile_with_cache(sweep, tmp_path)[2] is False
    assert list(tmp_path.glob("*.json")) == []


def test_an_unreadable_entry_is_a_miss(tmp_path):
    sweep = _sweep(_run_id(1))
    compile_with_cache(sweep, tmp_path)
    (entry,) = tmp_path.glob("*.json")
    entry.write_text("{not json", encoding="utf-8")
    again = _sweep(_run_id(2))
    spec, document, hit = compile_with_cache(again, tmp_path)
    assert hit is False and document == compiled_pipeline(again)[1]


def test_the_switch_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HYDRA_VERTEX_COMPILE_CACHE", raising=False)
    assert cache_folder() == tmp_path / "hydra-vertex-pipelines-launcher" / "compiled-pipelines"
    monkeypatch.setenv("HYDRA_VERTEX_COMPILE_CACHE", "0")
    assert cache_folder() is None
    sweep = _sweep(_run_id(1))
    assert compile_with_cache(sweep, None)[2] is False


def test_entries_no_run_used_for_30_days_are_removed_once_a_day(tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.user_cache import KEEP_DAYS, prune

    compile_with_cache(_sweep(_run_id(1)), tmp_path)
    (kept,) = tmp_path.glob("*.json")
    day = 86400
    now = time.time()
    old = now - (KEEP_DAYS + 5) * day
    stale = tmp_path / "stale.json"
    stale.write_text("{}", encoding="utf-8")
    for path in (kept, stale):
        os.utime(path, (old, old))
    assert compile_with_cache(_sweep(_run_id(2)), tmp_path)[2] is True  # a hit marks the entry as used now
    (tmp_path / ".pruned").unlink(missing_ok=True)
    prune(tmp_path, now=now)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [kept.name]  # the unused one is gone
    stale.write_text("{}", encoding="utf-8")
    os.utime(stale, (old, old))
    prune(tmp_path, now=now + 3600)  # looked for less than a day ago: not again
    assert stale.exists()
    prune(tmp_path, now=now + day + 1)
    assert not stale.exists() and kept.exists()
