"""The live report: while the launcher follows a run, report.html in the sweep dir shows the
trials finished so far (the collector's own rows), the others running or pending, and the
best so far, read from the bucket with one listing and only the new records per refresh.

The slow tests share one 40-trial sweep against the emulator started from its command line:
a fixture follows it from the outside while it runs (the report as it is rewritten, what
`results` prints, and the record reader's requests counted on its HTTP transport)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import APPS, CLI, REPO, read_json
from hydra_vertex_pipelines.components.collector import collect
from hydra_vertex_pipelines.components.live_summary import Progress, RunFacts, TrialNow, live_summary
from hydra_vertex_pipelines.components.report import render_html
from hydra_vertex_pipelines.components.sweep_files import TrialFiles
from hydra_vertex_pipelines.components.trial_result import parse_record
from hydra_vertex_pipelines.pipeline_builder.live.records import listing_roots, not_before
from test_report import Page, assert_self_contained, done, sweep, trial

FAULTS = APPS / "faults"
TRIALS = 40


# ---- the summary and page, from records on disk -------------------------------------------


def now_of(rows: List[Dict[str, Any]], progress: Dict[int, Progress]) -> Dict[int, TrialNow]:
    """Each trial as a refresh would see it: its record if the collector would find one."""
    out = {}
    for row in rows:
        path = Path(TrialFiles(row["output_dir"]).result)
        record = parse_record(path.read_bytes()) if path.exists() else None
        out[row["number"]] = TrialNow(record, Path(TrialFiles(row["output_dir"]).log).exists(), progress[row["number"]])
    return out


def test_finished_trials_have_the_collectors_rows_and_the_others_say_where_they_are(tmp_path):
    rows = sweep(tmp_path / "sweep")
    final = collect(rows, str(tmp_path / "summary.json"), "val.loss", "minimize")
    # Trials 4 (no record yet) and 6 (record hidden: still running) are not done; 4 pending.
    hidden = Path(TrialFiles(rows[6]["output_dir"]).result)
    hidden.rename(hidden.with_suffix(".later"))
    progress = {r["number"]: Progress.ENDED for r in rows} | {4: Progress.PENDING, 6: Progress.RUNNING}
    live = live_summary(rows, now_of(rows, progress), RunFacts("", "val.loss", "minimize"))

    by_number = {r["number"]: r for r in final["trials"]}
    for row in live["trials"]:
        if row["number"] in (4, 6):
            assert row["status"] == {4: "PENDING", 6: "RUNNING"}[row["number"]] and row["objective"] is None
        else:
            assert row == by_number[row["number"]]  # the collector's row, field for field
    assert live["live"]["done"] == 5 and live["live"]["total"] == 7
    assert live["counts"] == {"COMPLETED": 4, "FAILED": 1, "PENDING": 1, "RUNNING": 1}
    assert live["best"]["number"] == 1 and live["best"]["objective"] == 0.2

    page = render_html(live)
    assert_self_contained(page)
    parsed = Page(page)
    assert parsed.rows["trial-6"]["class"].split()[:2] == ["trial", "running"]
    assert parsed.rows["trial-4"]["data-status"] == "PENDING"
    assert re.search(r'id="live">running: 5 of 7 trials done, as of ', page)
    assert "<title>Sweep results: 7 trials: " in page and "(5 of 7 trials done)</title>" in page
    trial_plot = [p for p in parsed.plots if p.get("data-over") == "trial-number"][0]
    assert trial_plot["points"] == 3  # 0, 1, 2: trial 5's value is not a number, 4 and 6 have none


def test_the_final_report_has_no_live_line_and_no_reload(tmp_path):
    rows = sweep(tmp_path / "sweep")
    page = render_html(collect(rows, str(tmp_path / "summary.json"), "val.loss", "minimize"))
    assert 'id="live"' not in page and "http-equiv" not in page
    live = live_summary(rows, now_of(rows, {r["number"]: Progress.ENDED for r in rows}), RunFacts("", "val.loss"))
    live["live"]["reload_s"] = 5.0
    assert '<meta http-equiv="refresh" content="5">' in render_html(live)


def test_an_earlier_attempts_record_is_not_this_attempts_result(tmp_path):
    """A resumed run's trial that runs again: its folder still holds the first run's record."""
    started = "2026-01-01T00:00:00+00:00"
    rows = [trial(tmp_path, 0, ["x=1"], done(1.0, run_id="r", number=0, start_time=started))]
    record = parse_record(Path(TrialFiles(rows[0]["output_dir"]).result).read_bytes())
    attempt = time.time()  # this PipelineJob was created after that record started
    running = TrialNow(record, True, Progress.RUNNING, not_before(attempt, True, "RUNNING"))
    assert live_summary(rows, {0: running}, RunFacts("r"))["trials"][0]["status"] == "RUNNING"
    cache_hit = TrialNow(record, True, Progress.ENDED, not_before(attempt, True, "SKIPPED"))
    assert live_summary(rows, {0: cache_hit}, RunFacts("r"))["trials"][0]["return_value"] == 1.0
    assert not_before(None, True, "RUNNING") is None and not_before(attempt, False, "RUNNING") is None


def test_trials_outside_the_run_folder_are_listed_from_their_common_folder():
    uris = ["gs://b/runs/r1/0", "gs://b/runs/r1/1", "gs://other/x/a/2", "gs://other/x/b/3", "gs://third/t/4"]
    assert listing_roots("gs://b/runs/r1", uris) == ["gs://b/runs/r1", "gs://other/x", "gs://third/t/4"]


# ---- a 40-trial sweep against the emulator, followed ---------------------------------------


def counting_session():
    """A requests.Session that counts the requests a storage client sends through it."""
    import requests

    class Counting(requests.Session):
        sent = 0

        def request(self, *args, **kwargs):
            self.sent += 1
            return super().request(*args, **kwargs)

    return Counting()


def counted_storage(gcs_url: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
    try:
        session = counting_session()
        return storage.Client(project="local", credentials=AnonymousCredentials(), _http=session), session
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST")
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """The sweep followed by the launcher (x = 40..1, so the best improves as it goes), and
    what the test saw from outside while it ran."""
    from hydra_vertex_pipelines.pipeline_builder.live.records import RecordsSoFar
    from test_emulator_process import Emulator

    emulator = Emulator(tmp_path_factory.mktemp("live") / "data", args=["--max-parallel", "6"])
    sweep_dir = tmp_path_factory.mktemp("sweep")
    seen: Dict[str, Any] = {"pages": [], "results": None, "reads": []}
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(FAULTS / "app.py"),
                *emulator.faults_app_submit("live"),
                f"hydra.sweep.dir={sweep_dir}",
                "hydra.verbose=hydra_vertex_pipelines.pipeline_builder.live.report",  # each refresh's reads
                "+sleep=0.3",
                f"x=range({TRIALS},0,-1)",
            ],
            cwd=REPO,
            env={**os.environ, "HYDRA_FULL_ERROR": "0", "STORAGE_EMULATOR_HOST": emulator.gcs_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        storage, session = counted_storage(emulator.gcs_url)
        reader = None
        report = sweep_dir / "report.html"
        deadline = time.monotonic() + 240
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the sweep did not end"
            time.sleep(0.3)
            manifest = sweep_dir / "manifest.json"
            if reader is None and manifest.exists() and "vertex" in read_json(manifest):
                data = read_json(manifest)
                reader = RecordsSoFar(storage, data["run_root"], {int(t["number"]): t["output_uri"] for t in data["trials"]})
            if reader is not None:
                before = session.sent
                found = reader.read()
                seen["reads"].append((reader.last, session.sent - before, len(found)))
            if report.exists() and proc.poll() is None:
                page = report.read_text(encoding="utf-8")
                if 'id="live"' in page and (not seen["pages"] or seen["pages"][-1] != page):
                    seen["pages"].append(page)
                    done_now = page.count('data-status="COMPLETED"')
                    if seen["results"] is None and 5 <= done_now <= TRIALS - 10:
                        env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
                        seen["results"] = subprocess.run(
                            [CLI, "results", str(sweep_dir)], capture_output=True, text=True, timeout=120, env=env
                        )
                        seen["results_running"] = proc.poll() is None
        seen["stdout"] = proc.stdout.read()
        seen["returncode"] = proc.returncode
        seen["sweep_dir"] = sweep_dir
        yield seen
    finally:
        if "proc" in locals() and proc.poll() is None:
            proc.kill()
        emulator.stop(signal.SIGTERM)


def middle_page(seen: Dict[str, Any]) -> str:
    """A report written while the run went on, with some but not all trials done."""
    pages = [p for p in seen["pages"] if 0 < p.count('data-status="COMPLETED"') < TRIALS]
    assert pages, f"no report mid-run among {len(seen['pages'])}; launcher output:\n{seen.get('stdout', '')[-3000:]}"
    return pages[len(pages) // 2]


@pytest.mark.slow
def test_the_report_read_mid_run_shows_the_finished_trials_values_and_the_best_so_far(followed):
    assert followed["returncode"] == 0, followed["stdout"][-3000:]
    page = middle_page(followed)
    rows = Page(page).rows
    finished = {int(r["id"].split("-")[1]) for r in rows.values() if r["data-status"] == "COMPLETED"}
    waiting = [r for r in rows.values() if r["data-status"] in ("RUNNING", "PENDING")]
    assert len(rows) == TRIALS and finished and waiting
    for number in finished:  # trial n ran x = 40 - n, and returned it: its x and objective cells
        words = rows[f"trial-{number}"]["text"].split()
        at = words.index("COMPLETED")
        assert words[at + 1] == words[at + 2] == f"{float(TRIALS - number):g}", words
    best = max(finished)  # the lowest x so far
    assert f"best: trial {best} = {float(TRIALS - best):g} " in page
    assert rows[f"trial-{best}"]["class"].split()[-1] == "best"
    assert re.search(rf'id="live">running: {len(finished)} of {TRIALS} trials done', page)
    # The launcher's own line said the best so far too (log lines: no terminal here).
    assert re.search(r"running: \d+ succeeded, 0 failed, \d+ running of 40 trials; best: \d+ \(trial \d+\)", followed["stdout"])
    # The collector's report replaced the live one.
    final = (followed["sweep_dir"] / "report.html").read_text(encoding="utf-8")
    assert 'id="live"' not in final and "http-equiv" not in final
    assert final.count('data-status="COMPLETED"') == TRIALS and f"best: trial {TRIALS - 1} = 1 " in final


@pytest.mark.slow
def test_each_refresh_lists_once_and_reads_only_the_new_records(followed):
    reads = followed["reads"]
    assert len(reads) > 5, reads
    # What went over HTTP is what the reader counted, but for the storage client's own fetch of
    # the bucket's metadata (for its tracing), once per client and bucket.
    extra = [sent - reading.requests for reading, sent, _ in reads]
    assert min(extra) == 0 and sum(extra) <= 1, extra
    previous = 0
    for reading, _, found in reads:
        assert reading.pages == 1  # one listing: 40 trials' records fit one page
        assert reading.downloads == found - previous  # only the records that appeared since
        previous = found
    assert previous == TRIALS and sum(r.downloads for r, _, _ in reads) == TRIALS  # each record read once
    assert sum(1 for r, _, _ in reads if r.downloads == 0) > 0  # a read with nothing new costs the listing alone

    # The launcher's own refreshes (its reader counts as the transport above does).
    read = r"live report read: (\d+) listing pages, (\d+) records \((\d+) trials done\)"
    refreshes = [tuple(map(int, m)) for m in re.findall(read, followed["stdout"])]
    # Only in polls where a task changed: each trial's task at most twice (started, ended), the
    # collector's twice, and once when the run ended.
    assert 2 < len(refreshes) <= 2 * (TRIALS + 1) + 1, refreshes
    assert all(pages == 1 for pages, _, _ in refreshes)
    assert sum(records for _, records, _ in refreshes) == TRIALS  # each record read once
    assert refreshes[-1][2] == TRIALS


@pytest.mark.slow
def test_results_of_a_running_sweep_print_what_has_finished(followed):
    proc = followed["results"]
    assert proc is not None and followed["results_running"], "results never ran mid-run"
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "PIPELINE_STATE_RUNNING: no summary at " in lines[0] and " yet; from the trials' own records:" in lines[0]
    trials = [line for line in lines[1:] if line.startswith("  #")]
    assert len(trials) == TRIALS
    completed = [line for line in trials if line.split()[1] == "COMPLETED"]
    assert completed and len(completed) < TRIALS
    for line in completed:
        number = int(line.split()[0][1:])
        assert line.endswith(f" {float(TRIALS - number)}"), line
    assert {line.split()[1] for line in trials} <= {"COMPLETED", "RUNNING", "PENDING"}
    assert re.fullmatch(rf"  {len(completed)} of {TRIALS} trials done; best: \d+ \(trial \d+\)", lines[-1]), lines[-1]


@pytest.mark.slow
def test_the_live_report_in_chromium(followed, tmp_path):
    from test_report_browser import CHROMIUM, Browser, near, png_pixels

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is needed to check the live report in a browser and is not at {CHROMIUM}")
    page = middle_page(followed)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    finished = page.count('data-status="COMPLETED"')
    browser = Browser(tmp_path / "profile")
    try:
        url = path.as_uri()
        session, requested = browser.open(url)
        assert requested == [url], f"the page requested more than itself: {requested}"
        drawn = browser.evaluate(
            session,
            """(() => ({
              live: document.querySelector('#live').textContent,
              rows: document.querySelectorAll('#trials tbody tr').length,
              running: [...document.querySelectorAll('tr.running, tr.pending')].map(r => r.getBoundingClientRect().height),
              points: [...document.querySelectorAll('#plot-trial-number circle')].length,
              scripts: document.scripts.length,
            }))()""",
        )
        assert drawn["live"].startswith(f"running: {finished} of {TRIALS} trials done")
        assert drawn["rows"] == TRIALS and drawn["running"] and all(h > 10 for h in drawn["running"])
        assert drawn["points"] == finished and drawn["scripts"] == 0
        full = browser.screenshot(session)
        assert len(full) > 20_000  # a blank page compresses to a few hundred bytes
        box = browser.evaluate(
            session,
            "(() => { const r = document.querySelector('#plot-trial-number').getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()",
        )
        _, _, pixels = png_pixels(browser.screenshot(session, box))
        assert sum(near(p, (217, 119, 6)) for p in pixels) > 30  # the best point and the best-so-far line
    finally:
        browser.close()


# ---- refreshes against a storage emulator, the task states given as a poll gives them ---------


@pytest.fixture
def bucket_storage():
    """An in-memory Cloud Storage emulator and a client counting its requests."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    try:
        storage, session = counted_storage(f"http://127.0.0.1:{server._api._httpd.server_address[1]}")
        storage.create_bucket("b")
        yield storage, session
    finally:
        server.stop()


def test_a_refresh_reads_only_when_a_task_changed_and_the_last_one_marks_the_rest_missing(bucket_storage, tmp_path):
    from hydra_vertex_pipelines.pipeline_builder.live import LiveReport, RunView

    storage, session = bucket_storage
    uris = {n: f"gs://b/runs/r/{n}" for n in range(3)}
    rows = tuple({"number": n, "overrides": [f"x={n}"], "output_dir": f"/gcs/b/runs/r/{n}"} for n in range(3))
    view = RunView("gs://b/runs/r", rows, uris, {n: f"task-{n}" for n in range(3)}, RunFacts("r"))
    report = LiveReport(view, storage, tmp_path / "report.html", reload_s=5.0)

    def put(n: int) -> None:
        record = {"status": "COMPLETED", "return_value": 10.0 - n, "error": None, "run_id": "r", "number": n}
        storage.bucket("b").blob(f"runs/r/{n}/.vertex/result.json").upload_from_string(json.dumps(record))

    running = {"task-0": {"state": "RUNNING"}, "task-1": {"state": "RUNNING"}}
    summary = report.refresh("PIPELINE_STATE_RUNNING", running)
    assert [r["status"] for r in summary["trials"]] == ["RUNNING", "RUNNING", "PENDING"]
    put(0)
    sent = session.sent
    assert report.refresh("PIPELINE_STATE_RUNNING", running) is summary and session.sent == sent  # nothing changed: no request
    ended = {"task-0": {"state": "SUCCEEDED"}, "task-1": {"state": "RUNNING"}}
    summary = report.refresh("PIPELINE_STATE_RUNNING", ended)
    assert session.sent == sent + 2  # the listing and trial 0's new record
    assert [r["status"] for r in summary["trials"]] == ["COMPLETED", "RUNNING", "PENDING"] and summary["best"]["number"] == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'content="5"' in page and "running: 1 of 3 trials done" in page

    put(1)
    cancelled = {"task-0": {"state": "SUCCEEDED"}, "task-1": {"state": "SUCCEEDED"}, "task-2": {"state": "CANCELLED"}}
    sent = session.sent
    summary = report.refresh("PIPELINE_STATE_CANCELLED", cancelled)
    assert session.sent == sent + 2  # the listing and trial 1's record; trial 0's is not read again
    assert [r["status"] for r in summary["trials"]] == ["COMPLETED", "COMPLETED", "MISSING"] and summary["best"]["number"] == 1
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "http-equiv" not in page and 'id="live">cancelled: 3 of 3 trials done' in page
