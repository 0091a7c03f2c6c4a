"""The report people read: the best trial, every failure, plots per swept setting, nothing fetched."""

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from hydra_vertex_pipelines.components.collector import collect, objective_value, parse_overrides
from hydra_vertex_pipelines.components.report import error_headline, render_html, render_markdown
from hydra_vertex_pipelines.components.report_plots import numeric_axis

EVIL = "<script>alert(1)</script>"


def trial(root: Path, number: int, overrides: List[str], result: Any, log: bool = True) -> Dict[str, Any]:
    """A trial folder as a trial leaves it: .vertex/result.json (unless None) and .vertex/trial.log."""
    d = root / str(number)
    (d / ".vertex").mkdir(parents=True)
    if result is not None:
        (d / ".vertex" / "result.json").write_text(json.dumps(result))
    if log:
        (d / ".vertex" / "trial.log").write_text(f"trial {number}\n")
    return {"number": number, "overrides": overrides, "output_dir": str(d)}


def done(value: Any, **extra: Any) -> Dict[str, Any]:
    return {"status": "COMPLETED", "return_value": value, "error": None, "duration_s": 12.5, **extra}


def sweep(root: Path) -> List[Dict[str, Any]]:
    """lr (numbers) x model (names), one fixed setting, Hydra's own settings, and every way
    a trial can end: numbers, nested values, a list, a failure, no result at all."""
    fixed = ["seed=1", "hydra.job.chdir=true", "hydra/launcher=vertex_pipelines"]
    return [
        trial(root, 0, ["lr=0.1", "model=a", *fixed], done({"val": {"loss": 0.5}, "acc": 0.8})),
        trial(root, 1, ["lr=0.01", "model=a", *fixed], done({"val": {"loss": 0.2}, "acc": 0.9}, vertex_job_id="111")),
        trial(root, 2, ["lr=0.001", "model=b", *fixed], done({"val": {"loss": 0.3}, "acc": 0.95})),
        trial(
            root,
            3,
            ["lr=0.1", "model=b", *fixed],
            {"status": "FAILED", "return_value": None, "error": "Traceback (most recent call last):\n  x\nValueError: bad <lr>"},
        ),
        trial(root, 4, ["lr=0.01", "model=b", *fixed], None, log=False),
        trial(root, 5, ["lr=0.001", "model=a", *fixed], done({"val": {"loss": [1, 2]}, "acc": 0.7})),
        trial(root, 6, ["lr=0.1", f"+model={EVIL}", *fixed], done({"val": {"loss": 0.4}, "acc": 0.1})),
    ]


def summarise(tmp_path: Path, key: str = "val.loss", direction: str = "minimize", **kw: Any) -> Dict[str, Any]:
    rows = sweep(tmp_path / "sweep")
    return collect(rows, str(tmp_path / "sweep" / "summary.json"), key, direction, **kw)


class Page(HTMLParser):
    """What a test needs from the report: plots with their points, and table rows with their text."""

    def __init__(self, text: str):
        super().__init__()
        self.plots: List[Dict[str, Any]] = []
        self.rows: Dict[str, Dict[str, Any]] = {}
        self.tags: List[tuple] = []
        self._plot: Optional[Dict[str, Any]] = None
        self._row: Optional[Dict[str, Any]] = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "figure" and "plot" in a.get("class", "").split():
            self._plot = {**a, "points": 0, "best_points": 0}
            self.plots.append(self._plot)
        elif tag == "circle" and self._plot is not None:
            self._plot["points"] += 1
            self._plot["best_points"] += "best" in a.get("class", "").split()
        elif tag == "tr" and a.get("id", "").startswith("trial-"):
            self._row = {**a, "text": "", "links": []}
            self.rows[a["id"]] = self._row
        elif tag == "a" and self._row is not None:
            self._row["links"].append(a["href"])

    def handle_endtag(self, tag):
        if tag == "figure":
            self._plot = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None:
            self._row["text"] += data + " "


def test_objective_key_is_literal_first_then_a_dotted_path():
    assert objective_value(0.5, "") == 0.5
    assert objective_value(True, "") is None and objective_value("1", "") is None
    assert objective_value(float("nan"), "") is None
    assert objective_value({"val": {"loss": 0.2}}, "val.loss") == 0.2
    assert objective_value({"val.loss": 0.9, "val": {"loss": 0.2}}, "val.loss") == 0.9
    assert objective_value({"val/loss": 3}, "val/loss") == 3.0
    assert objective_value({"hist": [{"loss": 1}, {"loss": 2}]}, "hist.1.loss") == 2.0
    assert objective_value({"val": {"loss": [1]}}, "val.loss") is None
    assert objective_value({"val": 1}, "val.loss") is None
    assert objective_value([1, 2], "loss") is None


def test_swept_settings_leave_out_hydras_own_and_fixed_ones():
    assert parse_overrides(["+a=1", "++b=x=y", "~c", "hydra.run.dir=d", "hydra/launcher=v", "noeq"]) == {
        "a": "1",
        "b": "x=y",
        "c": "~",
    }


def test_summary_holds_the_best_trial_the_objective_and_the_swept_settings(tmp_path):
    summary = summarise(tmp_path)
    assert json.loads((tmp_path / "sweep" / "summary.json").read_text()) == summary
    assert summary["best"]["number"] == 1 and summary["best"]["objective"] == 0.2
    assert summary["objective"] == {"key": "val.loss", "direction": "minimize", "trials_with_value": 4}
    assert summary["swept"] == {
        "lr": {"numeric": True, "values": ["0.001", "0.01", "0.1"]},
        "model": {"numeric": False, "values": ["a", "b", EVIL]},
    }
    assert summary["fixed"] == {"seed": "1"}
    rows = {r["number"]: r for r in summary["trials"]}
    assert rows[5]["status"] == "COMPLETED" and rows[5]["objective"] is None  # shown, not dropped
    assert rows[5]["return_value"] == {"val": {"loss": [1, 2]}, "acc": 0.7}
    assert rows[3]["status"] == "FAILED" and rows[3]["objective"] is None
    assert rows[4]["status"] == "MISSING"
    assert rows[0]["log_path"] == str(tmp_path / "sweep" / "0" / ".vertex" / "trial.log")
    assert rows[4]["log_path"] is None
    assert summary["counts"] == {"COMPLETED": 5, "FAILED": 1, "MISSING": 1}


def test_direction_and_key_choose_the_best(tmp_path):
    assert summarise(tmp_path / "a", "val.loss", "maximize")["best"]["number"] == 0
    assert summarise(tmp_path / "b", "acc", "maximize")["best"]["number"] == 2
    assert summarise(tmp_path / "c", "acc", "MIN")["best"]["number"] == 6


def test_an_unknown_direction_is_reported_not_raised(tmp_path):
    summary = summarise(tmp_path, direction="sideways")
    assert summary["best"] is None
    assert "sideways" in summary["objective"]["note"]
    assert "sideways" in render_html(summary)


def test_console_links_need_project_and_location(tmp_path):
    rows = {r["number"]: r for r in summarise(tmp_path / "a", project="my proj", location="us-central1")["trials"]}
    assert rows[1]["vertex_job_id"] == "111"
    assert rows[1]["console_url"] == (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/111/cpu?project=my%20proj"
    )
    assert rows[1]["log_url"] == (
        "https://console.cloud.google.com/logs/query;query=resource.labels.job_id%3D%22111%22?project=my%20proj"
    )
    assert rows[0]["console_url"] is None  # no job id in its result
    local = {r["number"]: r for r in summarise(tmp_path / "b")["trials"]}
    assert local[1]["vertex_job_id"] == "111" and local[1]["console_url"] is None and local[1]["log_url"] is None


def test_markdown_marks_the_best_row_and_shows_failures(tmp_path):
    md = render_markdown(summarise(tmp_path))
    lines = {int(m.group(1)): line for line in md.splitlines() if (m := re.match(r"\| [★ ]*\| (\d+) \|", line))}
    assert len(lines) == 7
    assert lines[1].startswith("| ★ |") and not any("★" in lines[n] for n in lines if n != 1)
    assert "FAILED" in lines[3] and "ValueError: bad &lt;lr&gt;" in lines[3]
    assert "MISSING" in lines[4] and "no result.json" in lines[4]
    assert '"loss":\\[1,2\\]' in lines[5]  # nested values as compact JSON
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "best: trial 1 = 0.2" in md
    assert "\\[app\\] ValueError: bad &lt;lr&gt;" in lines[3] and "\\[unknown\\] no result.json" in lines[4]


def test_a_failure_found_by_the_launcher_shows_its_kind_and_message(tmp_path):
    from hydra_vertex_pipelines.components.failures import Failure, FailureKind, Source, with_failures

    summary = summarise(tmp_path)
    assert summary["trials"][3]["failure"] == {"kind": "app", "code": None, "message": "ValueError: bad <lr>", "source": "record"}
    quota = Failure(FailureKind.QUOTA, Source.LAUNCHER, None, "429 The following quota metrics exceed quota limits: x")
    assert with_failures(summary, {4: quota})
    md = render_markdown(summary)
    assert "\\[quota\\] 429 The following quota metrics exceed quota limits: x" in md
    page = render_html(summary)
    assert 'title="from its launcher task&#x27;s error">[quota]</span> 429 The following quota' in page
    assert 'title="from its record">[app]</span>' in page


def test_html_has_one_plot_per_swept_setting_and_one_over_trial_number(tmp_path):
    summary = summarise(tmp_path)
    page = Page(render_html(summary, str(tmp_path / "sweep")))
    assert [p.get("data-setting") for p in page.plots] == ["lr", "model", None]
    assert page.plots[-1]["id"] == "plot-trial-number"
    assert all(p["points"] == 4 and p["best_points"] == 1 for p in page.plots)  # trials 0, 1, 2, 6
    assert len(page.rows) == 7
    assert "best" in page.rows["trial-1"]["class"].split()
    assert "failed" in page.rows["trial-3"]["class"].split() and "ValueError: bad <lr>" in page.rows["trial-3"]["text"]
    assert "missing" in page.rows["trial-4"]["class"].split() and "no result.json" in page.rows["trial-4"]["text"]
    assert '{"val":{"loss":[1,2]},"acc":0.7}' in page.rows["trial-5"]["text"]


def test_html_links_logs_relative_to_the_report_and_jobs_to_the_console(tmp_path):
    summary = summarise(tmp_path, project="p", location="europe-west4")
    rows = Page(render_html(summary, str(tmp_path / "sweep"))).rows
    assert rows["trial-0"]["links"] == ["0/.vertex/trial.log", "0"]
    assert rows["trial-1"]["links"][0].startswith("https://console.cloud.google.com/logs/query;")
    assert rows["trial-1"]["links"][-1].startswith("https://console.cloud.google.com/vertex-ai/locations/europe-west4/")
    assert Page(render_html(summary, str(tmp_path))).rows["trial-0"]["links"][0] == "sweep/0/.vertex/trial.log"
    assert Page(render_html(summary)).rows["trial-0"]["links"][0] == str(tmp_path / "sweep" / "0" / ".vertex" / "trial.log")
    summary["trials"][0]["output_dir"] = "/gcs/bucket/run/0"
    assert "https://console.cloud.google.com/storage/browser/bucket/run/0" in Page(render_html(summary)).rows["trial-0"]["links"]


def test_user_text_is_escaped(tmp_path):
    text = render_html(summarise(tmp_path), str(tmp_path / "sweep"))
    assert EVIL not in text and "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "bad &lt;lr&gt;" in text


EXTERNAL = re.compile(r"""(?:\b(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?//|@import|url\()""", re.I)


def assert_self_contained(text: str) -> None:
    """No resource the page would fetch: console links (<a href>) are only followed on a click."""
    page = Page(text)
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe", "img", "object", "embed", "image"), tag
        for name in ("src", "href", "xlink:href", "data"):
            value = (attrs.get(name) or "").strip().lower()
            if tag != "a" and value:
                assert value.startswith("data:") or "//" not in value, (tag, name, value)
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert styles and not any(EXTERNAL.search(s) for s in styles)
    for tag in re.findall(r"<(?!a\s)[a-z]+\s[^>]*>", text):
        assert not EXTERNAL.search(tag), tag


def test_html_is_self_contained(tmp_path):
    summary = summarise(tmp_path, project="p", location="l")
    text = render_html(summary, str(tmp_path / "sweep"))
    assert "https://console.cloud.google.com" in text  # links, in <a> only
    assert_self_contained(text)


def test_no_objective_values_shows_a_note_instead_of_plots(tmp_path):
    summary = summarise(tmp_path, key="nope")
    assert summary["best"] is None and summary["objective"]["trials_with_value"] == 0
    text = render_html(summary)
    page = Page(text)
    assert page.plots == [] and 'id="no-plots"' in text and "nope" in text
    assert len(page.rows) == 7
    md = render_markdown(summary)
    assert "★" not in md and "no completed trial returned a number at 'nope'" in md


def test_all_failed_still_lists_every_trial(tmp_path):
    failed = {"status": "FAILED", "return_value": None, "error": "RuntimeError: out of memory"}
    rows = [trial(tmp_path, n, [f"x={n}"], failed) for n in range(3)]
    summary = collect(rows, str(tmp_path / "summary.json"))
    page = Page(render_html(summary))
    assert page.plots == [] and len(page.rows) == 3
    assert all("RuntimeError: out of memory" in r["text"] for r in page.rows.values())


def test_a_setting_some_trials_leave_unset_is_swept(tmp_path):
    rows = [trial(tmp_path, 0, ["a=1"], done(1.0)), trial(tmp_path, 1, ["a=1", "b=x"], done(2.0))]
    summary = collect(rows, str(tmp_path / "summary.json"))
    assert summary["swept"] == {"b": {"numeric": False, "values": [None, "x"]}} and summary["fixed"] == {"a": "1"}
    page = Page(render_html(summary))
    assert [p.get("data-setting") for p in page.plots] == ["b", None]
    assert "(unset)" in page.rows["trial-0"]["text"]


def test_numeric_axes_are_log_scaled_over_decades():
    assert numeric_axis([0.0001, 0.1], "lr").log
    axis = numeric_axis([0.2, 0.9], "loss")
    assert not axis.log and axis.lo <= 0.2 and axis.hi >= 0.9
    assert not numeric_axis([0.0001, 0.1], "loss", log=False).log
    assert numeric_axis([3, 3], "trial", integer=True).ticks  # one value still gets an axis


def test_error_headline_is_what_went_wrong():
    assert error_headline("Traceback (most recent call last):\n  File x\nValueError: bad\n") == "ValueError: bad"
    assert error_headline("no result.json at /x\nmore") == "no result.json at /x"
    assert error_headline(None) == ""


def test_a_thousand_trials_render_quickly_and_stay_small(tmp_path):
    rows = [
        trial(
            tmp_path,
            n,
            [f"lr={10 ** -(1 + n % 4)}", f"opt={'sgd' if n % 3 else 'adam'}"],
            done({"loss": (n * 37 % 101) / 100}),
            log=False,
        )
        for n in range(1000)
    ]
    start = time.perf_counter()
    summary = collect(rows, str(tmp_path / "summary.json"), "loss")
    text = render_html(summary, str(tmp_path))
    assert time.perf_counter() - start < 20
    page = Page(text)
    assert len(page.rows) == 1000 and [p["points"] for p in page.plots] == [1000, 1000, 1000]
    assert len(text) < 3_000_000
    assert_self_contained(text)


@pytest.mark.parametrize("value", [None, "text", [1, 2], {"a": {"b": 1}}, True])
def test_non_numeric_results_are_shown_as_such(tmp_path, value):
    rows = [trial(tmp_path, 0, ["x=1"], done(value)), trial(tmp_path, 1, ["x=2"], done(1.5))]
    summary = collect(rows, str(tmp_path / "summary.json"))
    assert summary["best"]["number"] == 1
    row = Page(render_html(summary)).rows["trial-0"]
    assert json.dumps(value, separators=(",", ":")) in row["text"]


@pytest.mark.parametrize(
    "bad",
    [
        '<img src="https://example.com/a.png">',
        '<link rel="stylesheet" href="//cdn.example.com/a.css">',
        "<style>body{background:url(http://example.com/a.png)}</style>",
        '<style>@import "x.css";</style>',
        '<svg><image href="http://example.com/a.png"/></svg>',
        '<script src="a.js"></script>',
    ],
)
def test_the_self_containment_check_catches_fetches(bad):
    with pytest.raises(AssertionError):
        assert_self_contained(f"<html><head><style></style></head><body>{bad}</body></html>")
