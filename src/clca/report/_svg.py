"""Small inline-SVG chart helpers: grouped bars with error bars, diverging bars, a line chart, a heatmap.

Every chart returns `markupsafe.Markup` holding one `<svg>` element. All text that reaches the SVG
(labels, titles, legend entries, tooltips) goes through `markupsafe.escape`, so model text or file
names can never inject markup. Numbers are formatted by the helpers, never taken as strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'

Triple = tuple[float, float | None, float | None]  # value, ci_low, ci_high


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    out = [math.floor(lo / step + 1e-9) * step]
    while out[-1] < hi - step * 1e-9:
        out.append(out[-1] + step)
    return [round(t, 10) for t in out]


MAX_LABEL = 44  # characters of a label drawn in a chart; the full text stays in a tooltip


def _clip(s: str) -> str:
    return s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…"


def _legend_width(names: Sequence[str]) -> int:
    """Room for a legend of these names (about 6.5 px per character at 11 px)."""
    return 30 + int(6.5 * max((len(_clip(n)) for n in names), default=0))


def _text(x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(s)}</text>'


def _heading(width: int, title: str) -> str:
    """The chart title, cut to the chart's width (the full title stays in the SVG <title>)."""
    room = max(10, int((width - 10) / 7.2))
    shown = title if len(title) <= room else title[: room - 1] + "…"
    return _text(width / 2, 16, shown, extra='font-weight="600" font-size="13"')


def _svg(width: int, height: int, body: list[str], title: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT}>'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        yy = y + i * 16
        out.append(f'<rect x="{x:.1f}" y="{yy - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(_text(x + 14, yy, _clip(name), "start", extra=f'data-label="{escape(name)}"'))
    return out


def bar_chart(
    groups: Sequence[str],
    series: Sequence[str],
    values: dict[tuple[str, str], Triple],
    *,
    title: str,
    y_label: str = "",
    width: int = 640,
    height: int = 300,
) -> Markup:
    """Grouped vertical bars: one group per x label, one bar per series, optional CI whiskers."""
    left, top, bottom = 52, 28, 48
    right = _legend_width(series)
    width = max(width, left + right + 60 * max(1, len(groups)))
    pw, ph = width - left - right, height - top - bottom
    vals = [v for t in values.values() for v in t if v is not None and math.isfinite(v)]
    lo = min([0.0, *vals]) if vals else 0.0
    hi = max([0.0, *vals]) if vals else 1.0
    ticks = _ticks(lo, hi)
    y0, y1 = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    body = [_heading(width, title)]
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e3e3e3"/>')
        body.append(_text(left - 6, y(t) + 4, _num(t), "end"))
    if y_label:
        body.append(_text(14, top + ph / 2, y_label, extra=f'transform="rotate(-90 14 {top + ph / 2:.1f})"'))
    gw = pw / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(series))
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        body.append(_text(left + gi * gw + gw / 2, top + ph + 16, g))
        for si, s in enumerate(series):
            t = values.get((g, s))
            if t is None or not math.isfinite(t[0]):
                continue
            v, clo, chi = t
            x = gx + si * bw
            ytop, ybase = min(y(v), y(0)), max(y(v), y(0))
            tip = f"{s} / {g}: {v:.4f}" + (f" [{clo:.4f}, {chi:.4f}]" if clo is not None and chi is not None else "")
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{ytop:.1f}" width="{max(1.0, bw - 2):.1f}" '
                f'height="{max(0.5, ybase - ytop):.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if clo is not None and chi is not None:
                cx = x + (bw - 2) / 2
                body.append(
                    f'<path d="M{cx:.1f} {y(clo):.1f}V{y(chi):.1f}M{cx - 3:.1f} {y(clo):.1f}h6M{cx - 3:.1f} '
                    f'{y(chi):.1f}h6" stroke="#222" fill="none"/>'
                )
    body.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>')
    body += _legend(series, left + pw + 14, top + 10)
    return _svg(width, height, body, title)


def diverging_bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    width: int = 640,
    row: int = 14,
) -> Markup:
    """Horizontal bars around zero, one row per label (e.g. per-question shift adapted - base)."""
    left, right, top, bottom = 120, 20, 28, 36
    height = top + bottom + row * max(1, len(labels))
    pw = width - left - right
    m = max([abs(v) for v in values if math.isfinite(v)] or [1.0]) or 1.0
    ticks = _ticks(-m, m, 4)
    x0, x1 = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    body = [_heading(width, title)]
    for t in ticks:
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - bottom}" stroke="#e3e3e3"/>')
        body.append(_text(x(t), height - bottom + 14, _num(t)))
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        yy = top + i * row
        body.append(_text(left - 6, yy + row * 0.75, lab, "end"))
        if not math.isfinite(v):
            continue
        a, b = sorted((x(0), x(v)))
        color = PALETTE[2] if v < 0 else PALETTE[3]
        body.append(
            f'<rect class="bar" x="{a:.1f}" y="{yy + 2:.1f}" width="{max(0.5, b - a):.1f}" height="{row - 4}" '
            f'fill="{color}"><title>{escape(f"{lab}: {v:+.4f}")}</title></rect>'
        )
    body.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - bottom}" stroke="#444"/>')
    if x_label:
        body.append(_text(left + pw / 2, height - 6, x_label))
    return _svg(width, height, body, title)


def line_chart(
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 280,
) -> Markup:
    """One polyline per named series of (x, y) points."""
    left, top, bottom = 56, 28, 44
    right = _legend_width(list(series))
    pw, ph = width - left - right, height - top - bottom
    pts = [p for s in series.values() for p in s if math.isfinite(p[0]) and math.isfinite(p[1])]
    xs = [p[0] for p in pts] or [0.0, 1.0]
    ys = [p[1] for p in pts] or [0.0, 1.0]
    xt, yt = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * pw

    def py(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    body = [_heading(width, title)]
    for t in yt:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e3e3e3"/>')
        body.append(_text(left - 6, py(t) + 4, _num(t), "end"))
    for t in xt:
        body.append(_text(px(t), top + ph + 16, _num(t)))
    for i, s in enumerate(series.values()):
        good = [p for p in s if math.isfinite(p[0]) and math.isfinite(p[1])]
        if not good:
            continue
        d = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in good)
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<polyline class="series" points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(good) == 1:
            body.append(f'<circle cx="{px(good[0][0]):.1f}" cy="{py(good[0][1]):.1f}" r="3" fill="{color}"/>')
    body += _legend(list(series), left + pw + 14, top + 10)
    if x_label:
        body.append(_text(left + pw / 2, height - 6, x_label))
    if y_label:
        body.append(_text(14, top + ph / 2, y_label, extra=f'transform="rotate(-90 14 {top + ph / 2:.1f})"'))
    return _svg(width, height, body, title)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: dict[tuple[str, str], float],
    *,
    title: str,
    highlight: dict[str, str] | None = None,
    cell: int = 54,
) -> Markup:
    """A row x column grid of values shaded light (low) to dark (high); `highlight[row] = col` outlines a cell."""
    left, top = _legend_width(rows), 44
    width, height = left + cell * max(1, len(cols)) + 20, top + 22 * max(1, len(rows)) + 16
    vals = [v for v in values.values() if math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    span = (hi - lo) or 1.0
    body = [_heading(width, title)]
    for ci, c in enumerate(cols):
        body.append(_text(left + ci * cell + cell / 2, top - 8, c))
    for ri, r in enumerate(rows):
        yy = top + ri * 22
        body.append(_text(left - 6, yy + 15, _clip(r), "end"))
        for ci, c in enumerate(cols):
            v = values.get((r, c))
            xx = left + ci * cell
            if v is None or not math.isfinite(v):
                body.append(f'<rect x="{xx}" y="{yy}" width="{cell - 2}" height="20" fill="#f4f4f4"/>')
                continue
            k = (v - lo) / span
            fill = f"rgb({int(235 - 170 * k)},{int(242 - 128 * k)},{int(250 - 74 * k)})"
            mark = highlight is not None and highlight.get(r) == c
            stroke = ' stroke="#e07b00" stroke-width="3"' if mark else ""
            body.append(
                f'<rect class="cell" x="{xx}" y="{yy}" width="{cell - 2}" height="20" fill="{fill}"{stroke}>'
                f"<title>{escape(f'{r} vs {c}: {v:.4f}')}</title></rect>"
            )
            ink = "#fff" if k > 0.6 else "#111"
            body.append(_text(xx + (cell - 2) / 2, yy + 14, f"{v:.3f}", extra=f'fill="{ink}"'))
    return _svg(width, height, body, title)
