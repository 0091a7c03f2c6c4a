"""The HTML report's plots, drawn as inline SVG by hand.

The report must open anywhere and fetch nothing, and the collector's image holds only the
standard library and kfp, so there is no JavaScript and no plotting library: each figure
is SVG text built here. report.py places the figures in its page; the few helpers that
turn a trial's values into text live here, since both the plots and the tables use them.
"""

import math
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra_vertex_pipelines.components.collector import numeric_setting, parse_overrides

MAX_TOOLTIP_CHARS = 2_000
MAX_AXIS_LABELS = 20
UNSET = "(unset)"

# Plot geometry, in SVG user units; the SVG scales to its figure's width.
WIDTH, HEIGHT = 440, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 62
INSET = 0.03  # of the plot area kept clear on each side, so edge points are not cut
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


# ---- values as text (report.py's tables use these too) -----------------------------------


def fmt_number(value: float) -> str:
    return f"{value:.6g}"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def objective_label(summary: Mapping[str, Any]) -> str:
    return summary["objective"]["key"] or "return value"


def settings_text(overrides: Sequence[str]) -> str:
    """A trial's own settings, Hydra's left out: what a reader compares trials by."""
    return " ".join(f"{k}={v}" for k, v in parse_overrides(overrides).items()) or "no overrides"


def setting_value(row: Mapping[str, Any], setting: str) -> Optional[str]:
    return parse_overrides(row["overrides"]).get(setting)


def best_number(summary: Mapping[str, Any]) -> Optional[int]:
    return summary["best"]["number"] if summary.get("best") else None


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
        ticks = [(10.0**e, f"{10.0**e:g}") for e in range(first, last + 1, every)]
        return Axis(f"{title} (log scale)", ticks, first, last, log=True)
    if lo == hi:
        pad = 1.0 if integer or lo == 0 else abs(lo) * 0.1
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, 5)
    if integer:
        step = max(1.0, step)
    start, end = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    positions = [start + i * step for i in range(int(round((end - start) / step)) + 1)]
    return Axis(title, [(t, f"{round(t, 12):g}") for t in positions], start, end)


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
    parts.append(
        f'<text class="axis-title" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_title)}</text>'
    )
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
    caption = f'{escape(label)} over trial number <span class="muted">(line: best so far)</span>'
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
