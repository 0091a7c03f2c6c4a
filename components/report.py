"""Renders a sweep's summary for people: a Markdown table and a self-contained HTML page.

The page is opened from buckets, laptops and networks without egress, and may be kept for
years, so it fetches nothing: inline CSS, plots as inline SVG, no script, no external
resource. Standard library only, like the collector that calls it.
"""

import json
import math
import os
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from hydra_vertex_pipelines.components.collector import CONSOLE, numeric_setting, parse_overrides
from hydra_vertex_pipelines.components.sweep_files import FUSE

MAX_CELL_CHARS = 80  # nested return values beyond this are cut in the table, whole in a tooltip
MAX_TOOLTIP_CHARS = 2_000
MAX_ERROR_CHARS = 4_000  # of each error's end, in the table's expandable cell
MAX_AXIS_LABELS = 20
UNSET = "(unset)"
STATUS_CLASSES = {"COMPLETED": "completed", "FAILED": "failed", "MISSING": "missing"}

# Plot geometry, in SVG user units; the SVG scales to its figure's width.
WIDTH, HEIGHT = 440, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 62
INSET = 0.03  # of the plot area kept clear on each side, so edge points are not cut
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#eef1f4;--best:#dafbe1;--fail:#ffebe9;--miss:#fff8c5;
--pt:#2563eb;--bestpt:#d97706}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:24px auto;max-width:1400px;padding:0 16px}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:24px 0 8px}
p.meta{color:var(--muted);margin:2px 0}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.note{padding:8px 12px;background:var(--miss);border:1px solid #d4a72c;border-radius:6px}
#plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px}
figure.plot{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 8px 4px}
figcaption{font-weight:600;font-size:13px}
svg{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:var(--muted)}
svg .axis-title{font-weight:600;fill:var(--fg)}
svg .grid{stroke:var(--soft)}svg .frame{fill:none;stroke:var(--line)}
svg .pt{fill:var(--pt);fill-opacity:.7}
svg .pt.best{fill:var(--bestpt);fill-opacity:1;stroke:var(--fg);stroke-width:1}
svg .running-best{fill:none;stroke:var(--bestpt);stroke-width:1.5}
.table-wrap{overflow:auto;max-height:85vh;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{padding:3px 8px;border-bottom:1px solid var(--soft);text-align:left;vertical-align:top;white-space:nowrap}
th{position:sticky;top:0;background:#f6f8fa;z-index:1;border-bottom:1px solid var(--line)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:var(--best)}tr.best td.mark{color:var(--bestpt);font-weight:700}
tr.failed td{background:var(--fail)}tr.missing td{background:var(--miss)}
td.status{font-weight:600}tr.failed td.status{color:#cf222e}tr.missing td.status{color:#9a6700}
tr.completed td.status{color:#1a7f37}
td.error{white-space:normal;min-width:16em;max-width:40em}
td.error pre{white-space:pre-wrap;max-height:20em;overflow:auto;margin:4px 0}
.muted{color:var(--muted)}
"""


# ---- values as text ----------------------------------------------------------------------


def fmt_number(value: float) -> str:
    return f"{value:.6g}"


def compact(value: Any) -> str:
    """A return value as one line of JSON: numbers, strings, lists and dicts show as such."""
    if isinstance(value, float) and not isinstance(value, bool):
        return fmt_number(value) if math.isfinite(value) else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def error_headline(error: Any) -> str:
    """The line of an error that says what went wrong: a traceback's last, else the first."""
    lines = [line.strip() for line in ("" if error is None else str(error)).splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def counts_text(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{total} trial{'s' * (total != 1)}" + (f": {parts}" if parts else "")


def objective_label(summary: Mapping[str, Any]) -> str:
    return summary["objective"]["key"] or "return value"


def settings_text(overrides: Sequence[str]) -> str:
    """A trial's own settings, Hydra's left out: what a reader compares trials by."""
    return " ".join(f"{k}={v}" for k, v in parse_overrides(overrides).items()) or "no overrides"


def setting_value(row: Mapping[str, Any], setting: str) -> Optional[str]:
    return parse_overrides(row["overrides"]).get(setting)


def best_number(summary: Mapping[str, Any]) -> Optional[int]:
    return summary["best"]["number"] if summary.get("best") else None


def show_return_column(summary: Mapping[str, Any]) -> bool:
    """Whether the return value says more than the objective column already does."""
    if summary["objective"]["key"]:
        return True
    return any(r.get("objective") is None and r["status"] == "COMPLETED" for r in summary["trials"])


def headline(summary: Mapping[str, Any]) -> Tuple[str, str, str]:
    """Plain-text lines on the counts, the objective and best trial, and the swept settings."""
    objective = summary["objective"]
    best = summary.get("best")
    verb = {"minimize": "minimized", "maximize": "maximized"}.get(objective["direction"], "")
    goal = f"objective: {objective_label(summary)}" + (f", {verb}" if verb else "")
    if best:
        goal += f"; best: trial {best['number']} = {fmt_number(best['objective'])} ({settings_text(best['overrides'])})"
    if objective.get("note"):
        goal += f"; {objective['note']}"
    swept = ", ".join(f"{k} ({len(v['values'])} values)" for k, v in summary["swept"].items()) or "nothing"
    fixed = ", ".join(f"{k}={v}" for k, v in summary["fixed"].items())
    return counts_text(summary["counts"]), goal, f"swept: {swept}" + (f"; fixed: {fixed}" if fixed else "")


# ---- Markdown ------------------------------------------------------------------------------


def md_cell(text: str) -> str:
    """Text that stays inside its table cell and renders as written, markup included."""
    text = escape(" ".join(str(text).split()), quote=False)
    for ch in "\\`*_[]|":
        text = text.replace(ch, "\\" + ch)
    return text


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The trial table for Vertex's Markdown viewer, the best row starred."""
    settings = list(summary["swept"])
    show_return = show_return_column(summary)
    linked = any(r.get("log_url") or r.get("console_url") for r in summary["trials"])
    header = ["", "trial", "status", *settings, objective_label(summary)]
    header += ["return value"] * show_return + ["duration", "error"] + ["links"] * linked
    best = best_number(summary)
    lines = [
        "## Sweep results",
        "",
        *(md_cell(line) + "  " for line in headline(summary)),
        "",
        "| " + " | ".join(md_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in summary["trials"]:
        completed = r["status"] == "COMPLETED"
        cells = ["★" if r["number"] == best else "", str(r["number"]), r["status"]]
        cells += [setting_value(r, s) or UNSET for s in settings]
        cells.append(fmt_number(r["objective"]) if r.get("objective") is not None else "—")
        if show_return:
            cells.append(cut(compact(r["return_value"]), MAX_CELL_CHARS) if completed else "—")
        cells += [fmt_duration(r.get("duration_s")), error_headline(r.get("error"))]
        row = [md_cell(c) for c in cells]
        if linked:
            urls = [(name, r.get(key)) for name, key in (("log", "log_url"), ("job", "console_url")) if r.get(key)]
            row.append(" ".join(f"[{name}](<{url}>)" for name, url in urls))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


# ---- SVG plots -----------------------------------------------------------------------------


class Axis:
    """Maps values to 0..1 along an axis and says where its ticks go."""

    def __init__(self, title: str, ticks: Sequence[Tuple[float, str]], lo: float, hi: float, log: bool = False):
        self.title, self.ticks, self.lo, self.hi, self.log = title, list(ticks), lo, hi, log

    def frac(self, value: float) -> float:
        if self.log:
            value = math.log10(value)
        return 0.5 if self.hi == self.lo else (value - self.lo) / (self.hi - self.lo)


def nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def numeric_axis(values: Sequence[float], title: str, integer: bool = False, log: bool = True) -> Axis:
    """A linear axis with round ticks, or a log one (if `log`) when positive values span
    2+ decades, as learning rates and weight decays do."""
    lo, hi = min(values), max(values)
    if log and lo > 0 and hi / lo >= 100:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        every = max(1, math.ceil((last - first) / 8))
        ticks = [(10.0**e, f"{10.0 ** e:g}") for e in range(first, last + 1, every)]
        return Axis(f"{title} (log scale)", ticks, first, last, log=True)
    if lo == hi:
        pad = 1.0 if integer or lo == 0 else abs(lo) * 0.1
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, 5)
    if integer:
        step = max(1.0, step)
    start, end = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [start + i * step for i in range(int(round((end - start) / step)) + 1)]
    return Axis(title, [(t, f"{round(t, 12):g}") for t in ticks], start, end)


def category_positions(categories: Sequence[str]) -> Dict[str, float]:
    return {c: (i + 0.5) / len(categories) for i, c in enumerate(categories)}


def x_px(frac: float) -> float:
    return round(LEFT + (INSET + (1 - 2 * INSET) * frac) * PLOT_W, 1)


def y_px(frac: float) -> float:
    return round(TOP + (1 - INSET - (1 - 2 * INSET) * frac) * PLOT_H, 1)


def svg_frame(x_ticks: Sequence[Tuple[float, str]], x_title: str, y: Axis, rotate: bool = False) -> List[str]:
    """Grid, ticks and axis titles; `x_ticks` are (position 0..1, label)."""
    parts = [f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}"/>']
    for value, label in y.ticks:
        py = y_px(y.frac(value))
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{py}" y2="{py}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py + 4}" text-anchor="end">{escape(label)}</text>')
    base = TOP + PLOT_H
    for frac, label in x_ticks:
        px = x_px(frac)
        parts.append(f'<line class="grid" x1="{px}" x2="{px}" y1="{base}" y2="{base + 4}" stroke="#8c959f"/>')
        if rotate:
            parts.append(
                f'<text x="{px}" y="{base + 14}" text-anchor="end" transform="rotate(-30 {px} {base + 14})">{escape(label)}</text>'
            )
        else:
            parts.append(f'<text x="{px}" y="{base + 16}" text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<text class="axis-title" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_title)}</text>')
    mid = TOP + PLOT_H / 2
    parts.append(
        f'<text class="axis-title" x="14" y="{mid}" text-anchor="middle" transform="rotate(-90 14 {mid})">{escape(y.title)}</text>'
    )
    return parts


def svg_point(x: float, y: float, tooltip: str, best: bool) -> str:
    cls, radius = ("pt best", 6) if best else ("pt", 3.5)
    return f'<circle class="{cls}" cx="{x_px(x)}" cy="{y_px(y)}" r="{radius}"><title>{escape(tooltip)}</title></circle>'


def figure(attrs: str, caption: str, body: Sequence[str], label: str) -> str:
    return (
        f'<figure class="plot" {attrs}><figcaption>{caption}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">{"".join(body)}</svg></figure>'
    )


def tooltip(row: Mapping[str, Any], label: str) -> str:
    text = f"trial {row['number']}: {label} = {fmt_number(row['objective'])}\n{settings_text(row['overrides'])}"
    return cut(text, MAX_TOOLTIP_CHARS)


def setting_plot(summary: Mapping[str, Any], setting: str, scored: Sequence[Mapping[str, Any]], y: Axis) -> str:
    """The objective against one swept setting: a numeric axis when every value is a number,
    else one column of points per value."""
    info = summary["swept"][setting]
    best = best_number(summary)
    label = objective_label(summary)
    values = {r["number"]: setting_value(r, setting) for r in scored}
    body: List[str] = []
    numbers = [numeric_setting(v) for v in values.values()]
    if info["numeric"] and any(n is not None for n in numbers):
        x = numeric_axis([n for n in numbers if n is not None], setting)
        body += svg_frame([(x.frac(t), lbl) for t, lbl in x.ticks], x.title, y)
        for r in scored:
            n = numeric_setting(values[r["number"]])
            if n is not None:
                body.append(svg_point(x.frac(n), y.frac(r["objective"]), tooltip(r, label), r["number"] == best))
    else:
        categories = [UNSET if v is None else v for v in info["values"]]
        where = category_positions(categories)
        every = max(1, math.ceil(len(categories) / MAX_AXIS_LABELS))
        shown = [(where[c], c) for i, c in enumerate(categories) if i % every == 0]
        rotate = max(len(c) for _, c in shown) * 6.5 > PLOT_W / len(shown)  # labels would overlap
        body += svg_frame([(f, cut(c, 10 if rotate else 16)) for f, c in shown], setting, y, rotate=rotate)
        band = 1 / len(categories)
        for r in scored:
            jitter = ((r["number"] * 0.6180339887) % 1 - 0.5) * band * 0.4  # spreads equal values apart
            value = values[r["number"]]
            x = where[UNSET if value is None else value] + jitter
            body.append(svg_point(x, y.frac(r["objective"]), tooltip(r, label), r["number"] == best))
    caption = f"{escape(label)} against <code>{escape(setting)}</code>"
    return figure(f'data-setting="{escape(setting)}"', caption, body, f"{label} against {setting}")


def trial_number_plot(summary: Mapping[str, Any], scored: Sequence[Mapping[str, Any]], y: Axis) -> str:
    """The objective over trial number, with the best value so far as a step line."""
    best = best_number(summary)
    label = objective_label(summary)
    x = numeric_axis([r["number"] for r in scored], "trial number", integer=True, log=False)
    body = svg_frame([(x.frac(t), lbl) for t, lbl in x.ticks], x.title, y)
    direction = summary["objective"]["direction"]
    if direction in ("minimize", "maximize"):
        pick = min if direction == "minimize" else max
        so_far: Optional[float] = None
        path: List[str] = []
        for r in sorted(scored, key=lambda r: r["number"]):
            so_far = r["objective"] if so_far is None else pick(so_far, r["objective"])
            px, py = x_px(x.frac(r["number"])), y_px(y.frac(so_far))
            path.append(f"M{px} {py}" if not path else f"H{px}V{py}")
        body.append(f'<path class="running-best" d="{"".join(path)}"><title>best so far</title></path>')
    for r in scored:
        body.append(svg_point(x.frac(r["number"]), y.frac(r["objective"]), tooltip(r, label), r["number"] == best))
    caption = f"{escape(label)} over trial number <span class=\"muted\">(line: best so far)</span>"
    return figure('id="plot-trial-number" data-over="trial-number"', caption, body, f"{label} over trial number")


def plots(summary: Mapping[str, Any]) -> List[str]:
    """One figure per swept setting and one over trial number; only trials with a value,
    the best one drawn last so that it is on top."""
    best = best_number(summary)
    scored = sorted((r for r in summary["trials"] if r.get("objective") is not None), key=lambda r: r["number"] == best)
    if not scored:
        return []
    y = numeric_axis([r["objective"] for r in scored], objective_label(summary), log=False)
    figures = [setting_plot(summary, s, scored, y) for s in summary["swept"]]
    return figures + [trial_number_plot(summary, scored, y)]


# ---- HTML page -----------------------------------------------------------------------------


def file_href(path: str, report_dir: Optional[str]) -> str:
    """A link to a local file: relative to the report when possible, so the folder can move."""
    if report_dir is not None:
        try:
            return quote(os.path.relpath(path, report_dir).replace(os.sep, "/"))
        except ValueError:  # another drive
            pass
    return quote(os.path.abspath(path).replace(os.sep, "/"))


def output_href(output_dir: str, report_dir: Optional[str]) -> str:
    """A trial's output folder: the console's bucket browser for /gcs/..., else a file link."""
    if output_dir.startswith(FUSE):
        return f"{CONSOLE}/storage/browser/{quote(output_dir[len(FUSE):])}"
    return file_href(output_dir, report_dir)


def link(href: str, text: str, title: str = "") -> str:
    tip = f' title="{escape(title)}"' if title else ""
    return f'<a href="{escape(href)}"{tip}>{escape(text)}</a>'


def row_links(row: Mapping[str, Any], report_dir: Optional[str]) -> str:
    links = []
    if row.get("log_url"):
        links.append(link(row["log_url"], "log", "the CustomJob's logs in Cloud Logging"))
    elif row.get("log_path"):
        links.append(link(file_href(row["log_path"], report_dir), "log", row["log_path"]))
    links.append(link(output_href(row["output_dir"], report_dir), "output", row["output_dir"]))
    if row.get("console_url"):
        links.append(link(row["console_url"], "job", f"CustomJob {row.get('vertex_job_id', '')}"))
    return " · ".join(links)


def error_cell(error: Any) -> str:
    if not error:
        return ""
    error = str(error)
    head = escape(error_headline(error))
    if error.strip() == error_headline(error):
        return head
    tail = error if len(error) <= MAX_ERROR_CHARS else "…" + error[-MAX_ERROR_CHARS:]
    return f"<details><summary>{head}</summary><pre>{escape(tail)}</pre></details>"


def return_cell(row: Mapping[str, Any]) -> str:
    if row["status"] != "COMPLETED":
        return '<td class="muted">—</td>'
    text = compact(row["return_value"])
    shown = escape(cut(text, MAX_CELL_CHARS))
    tip = f' title="{escape(cut(text, MAX_TOOLTIP_CHARS))}"' if len(text) > MAX_CELL_CHARS else ""
    repr_note = ' <span class="muted" title="not JSON: its repr">(repr)</span>' if row.get("return_value_is_repr") else ""
    return f"<td><code{tip}>{shown}</code>{repr_note}</td>"


def table(summary: Mapping[str, Any], report_dir: Optional[str]) -> str:
    """Every trial, however it ended, in trial order."""
    settings = list(summary["swept"])
    show_return = show_return_column(summary)
    best = best_number(summary)
    head = ["", "trial", "status", *(f"<code>{escape(s)}</code>" for s in settings), escape(objective_label(summary))]
    head += ["return value"] * show_return + ["duration", "error", "links"]
    rows = []
    for r in summary["trials"]:
        classes = [STATUS_CLASSES.get(r["status"], "other")] + ["best"] * (r["number"] == best)
        cells = [
            '<td class="mark" title="best trial">★</td>' if r["number"] == best else '<td class="mark"></td>',
            f'<td class="num">{r["number"]}</td>',
            f'<td class="status">{escape(str(r["status"]))}</td>',
        ]
        for s in settings:
            value = setting_value(r, s)
            cells.append(f'<td class="muted">{UNSET}</td>' if value is None else f"<td>{escape(value)}</td>")
        objective = r.get("objective")
        cells.append(f'<td class="num">{fmt_number(objective)}</td>' if objective is not None else '<td class="num muted">—</td>')
        if show_return:
            cells.append(return_cell(r))
        cells.append(f'<td class="num">{fmt_duration(r.get("duration_s"))}</td>')
        cells.append(f'<td class="error">{error_cell(r.get("error"))}</td>')
        cells.append(f'<td class="links">{row_links(r, report_dir)}</td>')
        rows.append(
            f'<tr id="trial-{r["number"]}" class="trial {" ".join(classes)}" data-status="{escape(str(r["status"]))}">{"".join(cells)}</tr>'
        )
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        f'<div class="table-wrap"><table id="trials"><thead><tr>{header}</tr></thead>'
        f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>'
    )


def render_html(summary: Mapping[str, Any], report_dir: Optional[str] = None) -> str:
    """The whole report as one file; local links are relative to `report_dir` when given."""
    counts, goal, swept = headline(summary)
    figures = plots(summary)
    if figures:
        plot_section = f'<section id="plots">{"".join(figures)}</section>'
    else:
        why = summary["objective"].get("note") or "no trial has a numeric objective"
        plot_section = f'<p id="no-plots" class="note">No plots: {escape(why)}. The table lists every trial.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Sweep results: {escape(counts)}</title>
<style>{CSS}</style></head>
<body>
<header id="overview"><h1>Sweep results</h1>
<p class="meta" id="counts">{escape(counts)}</p>
<p class="meta" id="objective">{escape(goal)}</p>
<p class="meta" id="swept">{escape(swept)}</p>
<p class="meta">created {escape(str(summary.get("created", "")))}</p></header>
<h2>Plots</h2>
{plot_section}
<h2>Trials</h2>
{table(summary, report_dir)}
</body></html>
"""
