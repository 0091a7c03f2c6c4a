"""The HTML report in a real browser: headless Chromium draws the table and plots, and the
page requests nothing but itself.

Chromium is driven over its DevTools pipe (--remote-debugging-pipe: NUL-terminated JSON on
file descriptors 3 and 4), which reports every request the page makes. Requests Chromium
makes for itself (updates, time sync) are not the page's and do not show there; they go to
a proxy on a closed port, so nothing leaves the machine either way.
"""

import base64
import json
import os
import queue
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from hydra_vertex_pipelines.components.collector import collect
from hydra_vertex_pipelines.components.report import render_html
from test_report import assert_self_contained, sweep

pytestmark = pytest.mark.slow  # renders in Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_S = 60


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium and its DevTools pipe."""

    def __init__(self, user_data_dir: Path):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        args = [
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--proxy-server=http://127.0.0.1:{closed_port()}",
            f"--user-data-dir={user_data_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # bash puts the pipe ends on fds 3 and 4 (dash takes one-digit fds only).
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_child} 4>&{from_child}', CHROMIUM, *args],
            pass_fds=(to_child, from_child),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._next_id = 0
        self._replies: Dict[int, Dict[str, Any]] = {}
        self._events: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self._cond = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buffer = b""
        with os.fdopen(self._read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._cond:
                            self._replies[message["id"]] = message
                            self._cond.notify_all()
                    else:
                        self._events.put(message)
        with self._cond:
            self._cond.notify_all()

    def call(self, method: str, session: Optional[str] = None, **params: Any) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while self._next_id not in self._replies:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"Chromium did not answer {method} (exit code {self.proc.poll()})")
                self._cond.wait(0.5)
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply["result"]

    def open(self, url: str, width: int = 1200, height: int = 2000) -> Tuple[str, List[str]]:
        """Loads `url` in a new tab; returns the tab's session and every URL the page requested."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Network.enable", session)
        self.call("Page.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", session, url=url)
        requested: List[str] = []
        loaded_at: Optional[float] = None
        deadline = time.monotonic() + TIMEOUT_S
        # After the load event, a short wait for anything the page would request late.
        while loaded_at is None or time.monotonic() < loaded_at + 1.0:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not load")
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event.get("sessionId") != session:
                continue
            if event["method"] == "Network.requestWillBeSent":
                requested.append(event["params"]["request"]["url"])
            elif event["method"] == "Page.loadEventFired":
                loaded_at = time.monotonic()
        return session, requested

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def screenshot(self, session: str, clip: Optional[Dict[str, float]] = None) -> bytes:
        params: Dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", session, **params)["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)


def png_pixels(data: bytes) -> Tuple[int, int, List[Tuple[int, ...]]]:
    """Width, height and RGB pixels of an 8-bit, non-interlaced RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, pixels = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, bpp)]
        previous = line
    return width, height, pixels


def near(pixel: Tuple[int, ...], colour: Tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(p - c) <= tolerance for p, c in zip(pixel, colour, strict=True))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is needed to check the HTML report in a browser and is not at {CHROMIUM}: "
            "install it (Debian: apt-get install chromium), as .ci/run does"
        )
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def report(tmp_path) -> Path:
    root = tmp_path / "sweep"
    summary = collect(sweep(root), str(root / "summary.json"), "val.loss", "minimize", "p", "us-central1")
    path = root / "report.html"
    path.write_text(render_html(summary, str(root)), encoding="utf-8")
    return path


DRAWN = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    plots: [...document.querySelectorAll('figure.plot')].map(f => ({
      setting: f.dataset.setting || null,
      svg: box(f.querySelector('svg')),
      points: [...f.querySelectorAll('circle')].filter(c => box(c)[0] > 0).length,
      ticks: f.querySelectorAll('text').length,
    })),
    rows: [...document.querySelectorAll('#trials tbody tr')].map(r => ({id: r.id, cls: r.className, h: box(r)[1]})),
    table: box(document.querySelector('#trials')),
    best: (() => { const r = document.querySelector('tr.best'); return r && getComputedStyle(r.cells[0]).backgroundColor; })(),
    failed: getComputedStyle(document.querySelector('#trial-3').cells[0]).backgroundColor,
    scripts: document.scripts.length,
  };
})()"""


def test_report_draws_its_table_and_plots_and_requests_nothing_else(browser, report):
    assert_self_contained(report.read_text())
    url = report.as_uri()
    session, requested = browser.open(url)
    assert requested == [url], f"the page requested more than itself: {requested}"
    drawn = browser.evaluate(session, DRAWN)
    assert [p["setting"] for p in drawn["plots"]] == ["lr", "model", None]
    for plot in drawn["plots"]:
        width, height = plot["svg"]
        assert width > 300 and height > 150, plot
        assert plot["points"] == 4 and plot["ticks"] >= 6, plot
    assert [r["id"] for r in drawn["rows"]] == [f"trial-{n}" for n in range(7)]
    assert all(r["h"] > 10 for r in drawn["rows"]) and drawn["table"][0] > 500
    assert drawn["best"] == "rgb(218, 251, 225)" and drawn["failed"] == "rgb(255, 235, 233)"
    assert drawn["scripts"] == 0

    full = browser.screenshot(session)
    assert full[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", full[16:24]) == (1200, 2000)
    assert len(full) > 20_000  # a blank page compresses to a few hundred bytes

    # The plot over trial number, as pixels: points, the best one and the best-so-far line.
    box = browser.evaluate(session, "(() => { const r = document.querySelector('#plot-trial-number').getBoundingClientRect();"
                                    " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
    _, _, pixels = png_pixels(browser.screenshot(session, box))
    points = sum(near(p, (102, 146, 241)) for p in pixels)  # #2563eb at 70% on white
    best = sum(near(p, (217, 119, 6)) for p in pixels)  # #d97706
    assert points > 30 and best > 30, (points, best)
    assert len(set(pixels)) > 20


def test_the_request_check_sees_what_a_page_fetches(browser, tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><link rel="icon" href="data:,"><img src="http://example.invalid/a.png">')
    _, requested = browser.open(page.as_uri())
    assert "http://example.invalid/a.png" in requested
