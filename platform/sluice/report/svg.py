"""Inline SVG charts of the campaign report: histogram, line, horizontal bar and error bar.

Each function returns one ``<svg>`` element as a string, sized by its ``viewBox`` so it
scales with the page, with a ``<title>`` and ``aria-label``. All text is HTML-escaped.
Empty or missing data draws a "No data" note in place of the chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sluice.report.format import _e
from sluice.report.format import _ok as _finite

Fmt = Callable[[float], str]
PALETTE = ("#3b6fb6", "#e8871e", "#4b9b58", "#d1495b", "#6f5aa8", "#8c96a3", "#c9a227")
WIDTH = 640
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 52, 48


def short(x: float) -> str:
    """A compact label for a tick value (up to 3 significant digits)."""
    return f"{x:.3g}"


@dataclass(frozen=True)
class _Scale:
    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, v: float) -> float:
        span = self.d1 - self.d0
        if span == 0:
            return self.r0
        return self.r0 + (v - self.d0) / span * (self.r1 - self.r0)


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values that cover ``lo`` to ``hi`` (about ``count`` steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    steps = max(math.ceil((hi - start) / step - 1e-9), 1)
    return [round(start + i * step, 12) for i in range(steps + 1)]


def _open(title: str, width: int, height: int, desc: str = "") -> list[str]:
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    if desc:
        parts.append(f"<desc>{_e(desc)}</desc>")
    parts.append(f'<text class="chart-title" x="8" y="20">{_e(title)}</text>')
    return parts


def no_data(title: str, note: str = "No data", width: int = WIDTH, height: int = 110) -> str:
    """A chart frame that says there is nothing to draw."""
    parts = _open(title, width, height, note)
    parts.append(
        f'<rect class="frame" x="8" y="32" width="{width - 16}" height="{height - 40}" rx="6"/>'
        f'<text class="no-data" x="{width / 2:.1f}" y="{(height + 32) / 2 + 5:.1f}"'
        f' text-anchor="middle">{_e(note)}</text></svg>'
    )
    return "".join(parts)


def _legend(names: Sequence[str], colours: Mapping[str, str], y: float = 38) -> str:
    out, x = [], float(LEFT)
    for name in names:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2"'
            f' fill="{_e(colours[name])}"/><text class="legend" x="{x + 14:.1f}" y="{y:.1f}">'
            f"{_e(name)}</text>"
        )
        x += 28 + 7 * len(name)
    return "".join(out)


def _y_axis(ys: _Scale, values: Sequence[float], fmt: Fmt, label: str, right: float) -> str:
    out = []
    for t in values:
        y = ys(t)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_e(fmt(t))}</text>"
        )
    mid = (ys.r0 + ys.r1) / 2
    out.append(
        f'<text class="axis-label" x="14" y="{mid:.1f}" text-anchor="middle"'
        f' transform="rotate(-90 14 {mid:.1f})">{_e(label)}</text>'
    )
    return "".join(out)


def _x_ticks(xs: _Scale, values: Sequence[float], fmt: Fmt, label: str, y0: float) -> str:
    out = [f'<line class="axis" x1="{xs.r0:.1f}" x2="{xs.r1:.1f}" y1="{y0:.1f}" y2="{y0:.1f}"/>']
    for t in values:
        x = xs(t)
        out.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y0 + 4:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{y0 + 17:.1f}" text-anchor="middle">'
            f"{_e(fmt(t))}</text>"
        )
    out.append(
        f'<text class="axis-label" x="{(xs.r0 + xs.r1) / 2:.1f}" y="{y0 + 36:.1f}"'
        f' text-anchor="middle">{_e(label)}</text>'
    )
    return "".join(out)


def _colours(names: Sequence[str], given: Mapping[str, str] | None) -> dict[str, str]:
    given = given or {}
    return {n: given.get(n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)}


def histogram(
    title: str,
    edges: Sequence[float],
    series: Mapping[str, Sequence[int]],
    *,
    x_label: str,
    normalize: bool = True,
    colours: Mapping[str, str] | None = None,
) -> str:
    """Grouped bars per bin, one colour per series; shares of each series when ``normalize``."""
    bins = len(edges) - 1
    usable = {k: [max(int(c), 0) for c in v] for k, v in series.items() if len(v) == bins}
    usable = {k: v for k, v in usable.items() if sum(v) > 0}
    if bins < 1 or not usable or not all(_finite(e) for e in edges):
        return no_data(title, "No data: no scores were recorded")
    names = list(usable)
    cols = _colours(names, colours)
    heights = {k: [c / sum(v) if normalize else float(c) for c in v] for k, v in usable.items()}
    top = max(max(v) for v in heights.values())
    y_fmt: Fmt = (lambda t: f"{t * 100:.0f}%") if normalize else short
    yt = ticks(0.0, top)
    ys = _Scale(yt[0], yt[-1], HEIGHT - BOTTOM, TOP)
    xs = _Scale(edges[0], edges[-1], LEFT, WIDTH - RIGHT)
    parts = _open(title, WIDTH, HEIGHT, f"{bins} bins, series: {', '.join(names)}")
    parts.append(_legend(names, cols))
    parts.append(_y_axis(ys, yt, y_fmt, "share of arm" if normalize else "count", WIDTH - RIGHT))
    for i in range(bins):
        x0, x1 = xs(edges[i]), xs(edges[i + 1])
        gap = (x1 - x0) * 0.1
        w = max((x1 - x0 - 2 * gap) / len(names), 0.5)
        for j, name in enumerate(names):
            h, count = heights[name][i], usable[name][i]
            y = ys(h)
            tip = f"{name}, {short(edges[i])}–{short(edges[i + 1])}: {count:,} ({h * 100:.1f}%)"
            parts.append(
                f'<rect x="{x0 + gap + j * w:.1f}" y="{y:.1f}" width="{w:.1f}"'
                f' height="{max(ys.r0 - y, 0):.1f}" fill="{_e(cols[name])}">'
                f"<title>{_e(tip)}</title></rect>"
            )
    inside = [t for t in ticks(edges[0], edges[-1], 8) if xs.r0 - 0.5 <= xs(t) <= xs.r1 + 0.5]
    parts.append(_x_ticks(xs, inside, short, x_label, HEIGHT - BOTTOM))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    fmt: Fmt = short,
    diagonal: str | None = None,
    colours: Mapping[str, str] | None = None,
) -> str:
    """Lines with point markers; ``diagonal`` names a dashed y = x reference line."""
    clean = {k: [(x, y) for x, y in v if _finite(x) and _finite(y)] for k, v in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return no_data(title, "No data: no outcomes to draw")
    names = list(clean)
    cols = _colours(names, colours)
    xs_all = [x for v in clean.values() for x, _ in v]
    ys_all = [y for v in clean.values() for _, y in v]
    xt, yt = ticks(min(0.0, *xs_all), max(xs_all)), ticks(min(0.0, *ys_all), max(ys_all))
    xs = _Scale(xt[0], xt[-1], LEFT, WIDTH - RIGHT)
    ys = _Scale(yt[0], yt[-1], HEIGHT - BOTTOM, TOP)
    parts = _open(title, WIDTH, HEIGHT)
    legend_cols = dict(cols)
    if diagonal:
        legend_cols[diagonal] = "#9aa3ad"
    parts.append(_legend([*names, *([diagonal] if diagonal else [])], legend_cols))
    parts.append(_y_axis(ys, yt, fmt, y_label, WIDTH - RIGHT))
    parts.append(_x_ticks(xs, xt, fmt, x_label, HEIGHT - BOTTOM))
    if diagonal:
        lo, hi = max(xt[0], yt[0]), min(xt[-1], yt[-1])
        parts.append(
            f'<line class="reference" x1="{xs(lo):.1f}" y1="{ys(lo):.1f}" x2="{xs(hi):.1f}"'
            f' y2="{ys(hi):.1f}"><title>{_e(diagonal)}</title></line>'
        )
    for name in names:
        pts = clean[name]
        path = " ".join(f"{xs(x):.1f},{ys(y):.1f}" for x, y in pts)
        colour = _e(cols[name])
        parts.append(f'<polyline class="series" points="{path}" stroke="{colour}"/>')
        for x, y in pts:
            parts.append(
                f'<circle cx="{xs(x):.1f}" cy="{ys(y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{_e(f'{name}: {fmt(x)}, {fmt(y)}')}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    title: str,
    items: Sequence[tuple[str, float | None]],
    *,
    x_label: str,
    fmt: Fmt = short,
    colour: str = PALETTE[0],
) -> str:
    """One horizontal bar per labelled value, with the value written at the bar's end."""
    values = [v for _, v in items if _finite(v)]
    if not values:
        return no_data(title)
    labels = [lab if len(lab) <= 34 else lab[:33] + "…" for lab, _ in items]
    left = min(max(7 * max(len(lab) for lab in labels) + 16, LEFT), 260)
    row, right = 26, WIDTH - 72
    height = TOP - 16 + row * len(items) + BOTTOM
    xt = ticks(min(0.0, *values), max(0.0, *values))
    xs = _Scale(xt[0], xt[-1], left, right)
    y0 = TOP - 16 + row * len(items)
    parts = _open(title, WIDTH, height)
    for t in xt:
        parts.append(
            f'<line class="grid" x1="{xs(t):.1f}" x2="{xs(t):.1f}" y1="{TOP - 16}" y2="{y0}"/>'
        )
    for i, ((full, v), lab) in enumerate(zip(items, labels, strict=True)):
        y = TOP - 16 + i * row
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(full)}</title>{_e(lab)}</text>"
        )
        if v is None or not math.isfinite(v):
            parts.append(f'<text class="value" x="{left + 4}" y="{y + row / 2 + 4:.1f}">n/a</text>')
            continue
        a, b = sorted((xs(0.0), xs(v)))
        parts.append(
            f'<rect x="{a:.1f}" y="{y + 4}" width="{max(b - a, 1):.1f}" height="{row - 8}"'
            f' rx="2" fill="{_e(colour)}"><title>{_e(f"{full}: {fmt(v)}")}</title></rect>'
            f'<text class="value" x="{b + 5:.1f}" y="{y + row / 2 + 4:.1f}">{_e(fmt(v))}</text>'
        )
    parts.append(_x_ticks(xs, xt, fmt, x_label, y0))
    parts.append("</svg>")
    return "".join(parts)


def error_bar_chart(
    title: str,
    points: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    y_label: str,
    fmt: Fmt = short,
    reference: tuple[str, float | None] | None = None,
    colours: Mapping[str, str] | None = None,
) -> str:
    """A point per category (label, value, low, high) with its interval as a whisker."""
    shown = [p for p in points if _finite(p[1])]
    if not shown:
        return no_data(title)
    cols = _colours([p[0] for p in points], colours)
    ref = reference if reference is not None and _finite(reference[1]) else None
    spread = [v for p in shown for v in p[1:] if v is not None and math.isfinite(v)]
    spread += [ref[1]] if ref is not None and ref[1] is not None else []
    yt = ticks(min(0.0, *spread), max(spread))
    ys = _Scale(yt[0], yt[-1], HEIGHT - BOTTOM, TOP)
    parts = _open(title, WIDTH, HEIGHT)
    parts.append(_y_axis(ys, yt, fmt, y_label, WIDTH - RIGHT))
    base = HEIGHT - BOTTOM
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>')
    if ref is not None and ref[1] is not None:
        y = ys(ref[1])
        parts.append(
            f'<line class="reference" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}"'
            f' y2="{y:.1f}"/><text class="legend" x="{WIDTH - RIGHT}" y="{y - 5:.1f}"'
            f' text-anchor="end">{_e(ref[0])}</text>'
        )
    slot = (WIDTH - RIGHT - LEFT) / len(points)
    for i, (label, value, low, high) in enumerate(points):
        cx = LEFT + slot * (i + 0.5)
        parts.append(
            f'<text class="tick" x="{cx:.1f}" y="{base + 18}" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
        if value is None or not math.isfinite(value):
            parts.append(f'<text class="value" x="{cx:.1f}" y="{base - 8}">n/a</text>')
            continue
        colour = _e(cols[label])
        if _finite(low) and _finite(high):
            y_lo, y_hi = ys(low), ys(high)
            parts.append(
                f'<line class="whisker" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_lo:.1f}"'
                f' y2="{y_hi:.1f}" stroke="{colour}"/>'
                f'<line class="whisker" x1="{cx - 10:.1f}" x2="{cx + 10:.1f}" y1="{y_lo:.1f}"'
                f' y2="{y_lo:.1f}" stroke="{colour}"/>'
                f'<line class="whisker" x1="{cx - 10:.1f}" x2="{cx + 10:.1f}" y1="{y_hi:.1f}"'
                f' y2="{y_hi:.1f}" stroke="{colour}"/>'
            )
        tip = f"{label}: {fmt(value)}"
        if _finite(low) and _finite(high):
            tip += f" ({fmt(low)} – {fmt(high)})"
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{ys(value):.1f}" r="5" fill="{colour}">'
            f"<title>{_e(tip)}</title></circle>"
            f'<text class="value" x="{cx + 14:.1f}" y="{ys(value) + 4:.1f}">'
            f"{_e(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
