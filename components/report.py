"""Renders a sweep's summary for people: a Markdown table and a self-contained HTML page.

The page is opened from buckets, laptops and networks without egress, and may be kept for
years, so it fetches nothing: inline CSS, plots as inline SVG, no script, no external
resource; the plots are drawn in report_plots.py. Standard library only, like the
collector that calls it.
"""

import math
import os
from html import escape
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import quote

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.collector import CONSOLE
from hydra_vertex_pipelines.components.live_summary import live_header, live_reload, live_text
from hydra_vertex_pipelines.components.machine_hours import SPOT, STANDARD, fmt_hours, fmt_money, usage_text
from hydra_vertex_pipelines.components.report_plots import (
    MAX_TOOLTIP_CHARS,
    UNSET,
    best_number,
    cut,
    fmt_number,
    objective_label,
    plots,
    setting_value,
    settings_text,
)
from hydra_vertex_pipelines.components.sweep_files import FUSE

MAX_CELL_CHARS = 80  # nested return values beyond this are cut in the table, whole in a tooltip
MAX_ERROR_CHARS = 4_000  # of each error's end, in the table's expandable cell
STATUS_CLASSES = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "MISSING": "missing",
    "RUNNING": "running",  # a live report's unfinished trials (components/live_summary.py)
    "PENDING": "pending",
    "UNFINISHED": "pending",
}

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
tr.completed td.status{color:#1a7f37}tr.running td.status{color:var(--pt)}tr.pending td{color:var(--muted)}
#live{font-weight:600}
td.error{white-space:normal;min-width:16em;max-width:40em}
td.error pre{white-space:pre-wrap;max-height:20em;overflow:auto;margin:4px 0}
.muted{color:var(--muted)}
"""


# ---- values as text ----------------------------------------------------------------------


def compact(value: Any) -> str:
    """A return value as one line of JSON: numbers, strings, lists and dicts show as such."""
    if isinstance(value, float) and not isinstance(value, bool):
        return fmt_number(value) if math.isfinite(value) else str(value)
    return strict_json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)


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


def machine_hours_cell(row: Mapping[str, Any]) -> str:
    """A trial's machine-hours, `(Spot)` when its machines were Spot VMs; "" when unknown."""
    u = row.get("usage")
    if not u:
        return ""
    hours = u["machine_hours"]
    text = fmt_hours(hours[SPOT] + hours[STANDARD]) + (" (Spot)" if hours[SPOT] > 0 else "")
    cost = row.get("estimated_cost")
    return text + (f" ≈ {fmt_money(cost['total'])} {cost['currency']}".rstrip() if cost else "")


def fallback_text(fallback: Optional[Mapping[str, Any]]) -> str:
    """The settings a trial's attempt ran on, as `trial.fallbacks` changed them:
    `fallbacks[1]: machine_type=n1-standard-8, accelerator_type=NVIDIA_TESLA_T4`; "" for its own."""
    if not fallback:
        return ""
    changed = ", ".join(f"{k}={compact(v) if isinstance(v, (dict, list)) else v}" for k, v in fallback["settings"].items())
    return f"fallbacks[{fallback['index']}]: {changed}"


def ran_on_cell(row: Mapping[str, Any]) -> str:
    """Which settings the trial finally ran on: a fallback's, or its own."""
    return fallback_text(row.get("fallback")) or "its own settings"


def shows_fallbacks(summary: Mapping[str, Any]) -> bool:
    """Whether any trial ran on a fallback: only then has the table a `ran on` column."""
    return any(r.get("fallback") for r in summary["trials"])


def usage_line(summary: Mapping[str, Any]) -> str:
    """The sweep's machine-hours (and estimated cost), and which times they were counted from."""
    usage = summary.get("usage")
    if not usage:
        return ""
    return f"usage, from the {usage['source']}: " + usage_text(usage["totals"], usage.get("estimated_cost"))


def counts_text(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{total} trial{'s' * (total != 1)}" + (f": {parts}" if parts else "")


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
    fallbacks = shows_fallbacks(summary)
    header = ["", "trial", "status", *settings, objective_label(summary)]
    header += ["return value"] * show_return + ["duration", "machine-hours"] + ["ran on"] * fallbacks
    header += ["error"] + ["links"] * linked
    best = best_number(summary)
    lines = [
        "## Sweep results",
        "",
        *(md_cell(line) + "  " for line in (*headline(summary), usage_line(summary)) if line),
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
        kind = failure_kind(r)
        cells += [fmt_duration(r.get("duration_s")), machine_hours_cell(r)] + [ran_on_cell(r)] * fallbacks
        cells.append((f"[{kind}] " if kind else "") + error_headline(shown_error(r)))
        row = [md_cell(c) for c in cells]
        if linked:
            urls = [(name, r.get(key)) for name, key in (("log", "log_url"), ("job", "console_url")) if r.get(key)]
            row.append(" ".join(f"[{name}](<{url}>)" for name, url in urls))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


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
        return f"{CONSOLE}/storage/browser/{quote(output_dir[len(FUSE) :])}"
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


def shown_error(row: Mapping[str, Any]) -> Any:
    """What a failed row's error cell says: its record's error, or, when another source
    (its CustomJob, its launcher task) told why it failed, what that source said."""
    failure = row.get("failure") or {}
    if failure.get("source") in ("custom_job", "launcher") and failure.get("message"):
        return failure["message"]
    return row.get("error")


def failure_kind(row: Mapping[str, Any]) -> str:
    """A failed row's kind ("" when it did not fail): see components/failures.py."""
    return str((row.get("failure") or {}).get("kind") or "")


SOURCE_NAMES = {
    "custom_job": "CustomJob's error",
    "launcher": "launcher task's error",
    "task": "task's state",
    "none": "folder, without a record",
}


def kind_badge(row: Mapping[str, Any]) -> str:
    failure = row.get("failure") or {}
    if not failure.get("kind"):
        return ""
    code = f", code {failure['code']}" if failure.get("code") is not None else ""
    title = escape(f"from its {SOURCE_NAMES.get(str(failure.get('source')), failure.get('source'))}{code}")
    return f'<span class="kind" title="{title}">[{escape(str(failure["kind"]))}]</span> '


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
    fallbacks = shows_fallbacks(summary)
    head += ["return value"] * show_return + ["duration", "machine-hours"] + ["ran on"] * fallbacks + ["error", "links"]
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
        cells.append(f'<td class="num machine-hours">{escape(machine_hours_cell(r))}</td>')
        if fallbacks:
            cells.append(f'<td class="ran-on">{escape(ran_on_cell(r))}</td>')
        cells.append(f'<td class="error">{kind_badge(r)}{error_cell(shown_error(r))}</td>')
        cells.append(f'<td class="links">{row_links(r, report_dir)}</td>')
        rows.append(
            f'<tr id="trial-{r["number"]}" class="trial {" ".join(classes)}" data-status="{escape(str(r["status"]))}">{"".join(cells)}</tr>'
        )
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        f'<div class="table-wrap"><table id="trials"><thead><tr>{header}</tr></thead>'
        f"<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>"
    )


def render_html(summary: Mapping[str, Any], report_dir: Optional[str] = None) -> str:
    """The whole report as one file; local links are relative to `report_dir` when given."""
    counts, goal, swept = headline(summary)
    title = f"{counts} ({live_text(summary)})" if summary.get("live") else counts
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
{live_reload(summary)}<title>Sweep results: {escape(title)}</title>
<style>{CSS}</style></head>
<body>
<header id="overview"><h1>Sweep results</h1>
{live_header(summary)}
<p class="meta" id="counts">{escape(counts)}</p>
<p class="meta" id="objective">{escape(goal)}</p>
<p class="meta" id="swept">{escape(swept)}</p>
<p class="meta" id="usage">{escape(usage_line(summary))}</p>
<p class="meta">created {escape(str(summary.get("created", "")))}</p></header>
<h2>Plots</h2>
{plot_section}
<h2>Trials</h2>
{table(summary, report_dir)}
</body></html>
"""
