"""The Inglehart-Welzel cultural map in the reports: every country as a point coloured by its cultural zone,
the evaluated cultures labelled, each (model, style, culture) a marker with its 95 % persona-bootstrap
ellipse, and an arrow from the base model to each adapted model (same style and culture).

- `read_map(store)`: the map rows `clca.wvs` stored (`records.map_key`);
- `map_svg`: the figure as inline SVG (the single-run report; hand-written, so each CI is one <ellipse>);
- `map_figure`: the report's figure files (SVG + CSV) or the compare figure (PDF + PNG + CSV, matplotlib);
- `map_paired`: paired differences of the distance to the target culture, adapted minus base, bootstrap
  over the personas both answered as.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from ..records import METRIC, split_map_key
from ..store import RunStore
from ..wvs import AXIS_TITLES, ZONES, MapCountry, ellipse, published_positions
from ._svg import FONT, PALETTE

ZONE_COLOURS = dict(zip(ZONES, ("#8c564b", "#ff7f0e", "#9467bd", "#1f77b4", "#e377c2", "#2ca02c", "#17becf",
                                "#bcbd22"), strict=True))  # fmt: skip
MARKERS = {"persona": "circle", "cultural": "square", "anthropological": "triangle", "none": "diamond"}
DISTANCE_METRIC = "iw_distance"
MAP_NAME = "cultural_map"
MAP_TITLE = "Inglehart-Welzel cultural map: models among the survey's countries"


@dataclass
class MapPoint:
    run: str
    model: str
    style: str
    culture: str
    role: str
    x: float
    y: float
    cov: list[list[float]]
    distance: float | None
    nearest: str | None
    per_persona: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model} ({self.style}) as {self.culture}"


@dataclass
class MapData:
    points: list[MapPoint]
    countries: dict[str, MapCountry]
    note: str = ""


def read_map(store: RunStore, run: str = "", base_model: str | None = None) -> MapData:
    """The map rows of one run (role 'base' for base_model's rows, else 'adapted')."""
    points: list[MapPoint] = []
    countries: dict[str, MapCountry] = {}
    note = ""
    for rec in store.iter(METRIC):
        ident = split_map_key(rec.key)
        if ident is None or rec.status != "ok" or not isinstance(rec.data, dict):
            continue
        alias, style, culture = ident
        d = rec.data
        m = d.get("map") or {}
        if not countries:
            countries = _background(m)
            loo = m.get("loo_error")
            loo_text = f", leave-one-country-out error {loo:.2f}" if isinstance(loo, (int, float)) else ""
            note = (
                f"{m.get('method', '?')} projection ({m.get('source', '?')} positions, "
                f"{len(m.get('countries') or [])} calibration countries{loo_text})"
            )
        points.append(
            MapPoint(
                run=run,
                model=alias,
                style=style,
                culture=culture,
                role="base" if base_model is not None and alias == base_model else "adapted",
                x=float(d["x"]),
                y=float(d["y"]),
                cov=d.get("cov") or [[0, 0], [0, 0]],
                distance=d.get("distance"),
                nearest=d.get("nearest"),
                per_persona=d.get("per_persona") or {},
            )  # fmt: skip
        )
    return MapData(points=points, countries=countries or dict(published_positions()), note=note)


def _background(m: dict[str, Any]) -> dict[str, MapCountry]:
    pos = m.get("positions")
    if m.get("source") == "survey" and isinstance(pos, dict):
        pub = published_positions()
        return {
            c: MapCountry(iso3=c, name=pub[c].name if c in pub else c, year=None,
                          zone=pub[c].zone if c in pub else "other", position=(float(p[0]), float(p[1])))
            for c, p in pos.items()
        }  # fmt: skip
    return dict(published_positions())


def _arrows(points: Sequence[MapPoint]) -> list[tuple[MapPoint, MapPoint]]:
    base = {(p.run, p.style, p.culture): p for p in points if p.role == "base"}
    return [(base[k], p) for p in points if p.role != "base" and (k := (p.run, p.style, p.culture)) in base]


def _colours(points: Sequence[MapPoint]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for p in points:
        key = (p.run, p.model)
        if key not in out:
            out[key] = "#555555" if p.role == "base" else PALETTE[len(out) % len(PALETTE)]
    return out


def _marker(kind: str, x: float, y: float, colour: str, title: str, cls: str = "model-point") -> str:
    t = f"<title>{escape(title)}</title>"
    attrs = f'fill="{colour}" stroke="#000" stroke-width="1" class="{cls}"'
    if kind == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" {attrs}>{t}</rect>'
    if kind in ("triangle", "diamond"):
        pts = (
            [(x, y - 6), (x + 6, y + 5), (x - 6, y + 5)]
            if kind == "triangle"
            else [(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)]
        )
        return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {attrs}>{t}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" {attrs}>{t}</circle>'


def map_svg(data: MapData, labelled: Sequence[str] = (), targets: Sequence[str] = ()) -> Markup:
    """The map as one <svg>: equal scales on both axes; every text escaped."""
    size, pad, legend_w = 460, 40, 230
    xs = [c.position[0] for c in data.countries.values()] + [p.x for p in data.points]
    ys = [c.position[1] for c in data.countries.values()] + [p.y for p in data.points]
    lo = math.floor(min(xs + ys) * 2) / 2 - 0.25
    hi = math.ceil(max(xs + ys) * 2) / 2 + 0.25
    scale = size / (hi - lo)

    def px(v: float) -> float:
        return pad + (v - lo) * scale

    def py(v: float) -> float:
        return pad + (hi - v) * scale

    body: list[str] = [
        '<defs><marker id="iwmap-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#000"/></marker></defs>',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="#fff" stroke="#999"/>',
        f'<line x1="{px(0):.1f}" y1="{pad}" x2="{px(0):.1f}" y2="{pad + size}" stroke="#ccc"/>',
        f'<line x1="{pad}" y1="{py(0):.1f}" x2="{pad + size}" y2="{py(0):.1f}" stroke="#ccc"/>',
        f'<text x="{pad + size / 2:.1f}" y="{pad + size + 28}" text-anchor="middle">'
        f"{escape(AXIS_TITLES['secular'])}</text>",
        f'<text x="14" y="{pad + size / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {pad + size / 2:.1f})">'
        f"{escape(AXIS_TITLES['selfexpr'])}</text>",
    ]
    tick = math.ceil(lo)
    while tick <= hi:
        body.append(f'<text x="{px(tick):.1f}" y="{pad + size + 13}" text-anchor="middle" font-size="9">{tick}</text>')
        body.append(f'<text x="{pad - 4}" y="{py(tick) + 3:.1f}" text-anchor="end" font-size="9">{tick}</text>')
        tick += 1
    for c in data.countries.values():
        colour = ZONE_COLOURS.get(c.zone, "#999999")
        body.append(
            f'<circle cx="{px(c.position[0]):.1f}" cy="{py(c.position[1]):.1f}" r="3" fill="{colour}" '
            f'fill-opacity="0.75" class="country" data-country="{escape(c.iso3)}">'
            f"<title>{escape(c.name)} ({escape(c.zone)})</title></circle>"
        )
    for iso in labelled:
        if iso in data.countries:
            c = data.countries[iso]
            weight = ' font-weight="700"' if iso in targets else ""
            body.append(
                f'<circle cx="{px(c.position[0]):.1f}" cy="{py(c.position[1]):.1f}" r="5" fill="none" stroke="#000"/>'
                f'<text x="{px(c.position[0]) + 7:.1f}" y="{py(c.position[1]) - 6:.1f}" class="culture-label"{weight}>'
                f"{escape(c.name)}</text>"
            )
    colours = _colours(data.points)
    for p in data.points:
        e = ellipse(np.array(p.cov))
        if e is None:
            continue
        a, b, angle = e
        body.append(
            f'<ellipse cx="{px(p.x):.1f}" cy="{py(p.y):.1f}" rx="{a * scale:.1f}" ry="{max(b * scale, 0.5):.1f}" '
            f'transform="rotate({-angle:.1f} {px(p.x):.1f} {py(p.y):.1f})" fill="{colours[(p.run, p.model)]}" '
            f'fill-opacity="0.18" stroke="{colours[(p.run, p.model)]}" class="ci-ellipse"/>'
        )
    for b0, a1 in _arrows(data.points):
        body.append(
            f'<line x1="{px(b0.x):.1f}" y1="{py(b0.y):.1f}" x2="{px(a1.x):.1f}" y2="{py(a1.y):.1f}" stroke="#000" '
            'stroke-width="1.5" marker-end="url(#iwmap-arrow)" class="shift-arrow"/>'
        )
    for p in data.points:
        d = "" if p.distance is None else f", distance to {p.culture} {p.distance:.2f}"
        title = f"{p.label}: ({p.x:+.2f}, {p.y:+.2f}){d}, nearest {p.nearest}"
        body.append(_marker(MARKERS.get(p.style, "circle"), px(p.x), py(p.y), colours[(p.run, p.model)], title))
        body.append(  # which culture the model was prompted as
            f'<text x="{px(p.x) + 8:.1f}" y="{py(p.y) + 12:.1f}" font-size="9" fill="#333">{escape(p.culture)}</text>'
        )
    lx, ly = pad + size + 16, pad + 6
    zones = [z for z in ZONES if any(c.zone == z for c in data.countries.values())]
    for i, z in enumerate(zones):
        body.append(f'<circle cx="{lx + 5}" cy="{ly + i * 15:.1f}" r="4" fill="{ZONE_COLOURS[z]}"/>')
        body.append(f'<text x="{lx + 14}" y="{ly + i * 15 + 4:.1f}">{escape(z)}</text>')
    ly += len(zones) * 15 + 10
    shown: list[tuple[str, str]] = []
    for p in data.points:
        for entry in (("model", f"{p.run + ': ' if p.run else ''}{p.model}"), ("style", p.style)):
            if entry not in shown:
                shown.append(entry)
    for i, (kind, name) in enumerate(shown):
        y = ly + i * 16
        if kind == "model":
            run, _, model = name.rpartition(": ")
            colour = next(v for k, v in colours.items() if k == (run, model))
            body.append(f'<rect x="{lx}" y="{y - 5:.1f}" width="10" height="10" fill="{colour}"/>')
        else:
            body.append(_marker(MARKERS.get(name, "circle"), lx + 5, y, "#fff", name, "legend-marker"))
        body.append(f'<text x="{lx + 14}" y="{y + 4:.1f}">{escape(name)}</text>')
    width, height = pad + size + legend_w, pad + size + 40
    title = MAP_TITLE + (f"; {data.note}" if data.note else "")
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart iwmap" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(MAP_TITLE)}" {FONT}>'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def map_frame(data: MapData) -> pd.DataFrame:
    """The plotted data: one row per country and per model point."""
    rows: list[dict[str, Any]] = [
        {"kind": "country", "name": c.name, "culture": c.iso3, "zone": c.zone, "secular": c.position[0],
         "selfexpr": c.position[1]}
        for c in data.countries.values()
    ]  # fmt: skip
    for p in data.points:
        rows.append({
            "kind": "model", "name": p.label, "culture": p.culture, "run": p.run, "model": p.model,
            "style": p.style, "role": p.role, "secular": p.x, "selfexpr": p.y, "distance": p.distance,
            "nearest": p.nearest, "cov_xx": p.cov[0][0], "cov_xy": p.cov[0][1], "cov_yy": p.cov[1][1],
        })  # fmt: skip
    return pd.DataFrame(rows)


def map_figure(data: MapData, out: Path, labelled: Sequence[str], targets: Sequence[str], svg: bool) -> Any:
    """The map's files in OUT: svg=True the hand-written SVG (+ CSV) for the single-run report; otherwise a
    matplotlib PDF + PNG (+ CSV) for `clca compare --out`. None when no model was placed."""
    from ._figures import Figure, _pyplot, _save

    if not data.points:
        return None
    frame = map_frame(data)
    if svg:
        markup = map_svg(data, labelled, targets)
        path, csv = out / f"{MAP_NAME}.svg", out / f"{MAP_NAME}.csv"
        path.write_text(str(markup), encoding="utf-8")
        frame.to_csv(csv, index=False)
        return Figure(name=MAP_NAME, title=MAP_TITLE, png=b"", files=(path, csv), svg=str(markup))
    from matplotlib.patches import Ellipse

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for z in ZONES:
        cs = [c for c in data.countries.values() if c.zone == z]
        if cs:
            ax.scatter([c.position[0] for c in cs], [c.position[1] for c in cs], s=12, color=ZONE_COLOURS[z], label=z)
    for iso in labelled:
        if iso in data.countries:
            c = data.countries[iso]
            ax.annotate(c.name, c.position, xytext=(4, 4), textcoords="offset points", fontsize=8,
                        fontweight="bold" if iso in targets else "normal")  # fmt: skip
    colours = _colours(data.points)
    mk = {"circle": "o", "square": "s", "triangle": "^", "diamond": "D"}
    for p in data.points:
        col = colours[(p.run, p.model)]
        e = ellipse(np.array(p.cov))
        if e is not None:
            a, b, angle = e
            ax.add_patch(Ellipse((p.x, p.y), 2 * a, 2 * b, angle=angle, color=col, alpha=0.18))
        ax.scatter([p.x], [p.y], marker=mk[MARKERS.get(p.style, "circle")], s=50, color=col, edgecolors="black",
                   label=f"{p.run + ': ' if p.run else ''}{p.model} ({p.style}) as {p.culture}", zorder=3)  # fmt: skip
    for b0, a1 in _arrows(data.points):
        ax.annotate("", xy=(a1.x, a1.y), xytext=(b0.x, b0.y), arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.axhline(0, color="#ccc", lw=0.8)
    ax.axvline(0, color="#ccc", lw=0.8)
    ax.set_xlabel(AXIS_TITLES["secular"])
    ax.set_ylabel(AXIS_TITLES["selfexpr"])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Inglehart-Welzel cultural map", fontsize=10)
    fig.tight_layout()
    return _save(fig, out, MAP_NAME, MAP_TITLE, frame, False)


def map_paired(data: MapData, resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Adapted minus base distance to the target culture (same run, style and culture): the mean over
    persona bootstrap resamples of the difference of the two mean positions' distances, with its 95 %
    percentile interval; personas both rows answered as only."""
    out: list[dict[str, Any]] = []
    for base, ad in _arrows(data.points):
        target = data.countries.get(ad.culture)
        common = sorted(set(base.per_persona) & set(ad.per_persona))
        if target is None or not common:
            continue
        t = np.array(target.position)
        pb = np.array([base.per_persona[k] for k in common])
        pa = np.array([ad.per_persona[k] for k in common])
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(common), size=(resamples, len(common)))
        diff = np.linalg.norm(pa[idx].mean(axis=1) - t, axis=1) - np.linalg.norm(pb[idx].mean(axis=1) - t, axis=1)
        point = float(np.linalg.norm(pa.mean(axis=0) - t) - np.linalg.norm(pb.mean(axis=0) - t))
        out.append({
            "culture": ad.culture, "row": f"{ad.run}:{ad.model}:{ad.style}",
            "baseline": f"{base.run}:{base.model}:{base.style}",
            "n": len(common), "diff": point, "ci_low": float(np.percentile(diff, 2.5)),
            "ci_high": float(np.percentile(diff, 97.5)),
        })  # fmt: skip
    return out


def comparison_map(comp: Any, resamples: int = 2000, seed: int = 0) -> MapData:
    """The map points of every run of a comparison (roles as the comparison's rows have them), and the
    paired distance-to-target differences (adapted vs base) appended to `comp.paired`."""
    from ._compare import UNIT_PERSONAS, PairedStat

    roles = {(r.run, r.model): r.role for r in comp.rows}
    points: list[MapPoint] = []
    data = MapData(points=[], countries={})
    for info in comp.runs:
        with RunStore(Path(info.path), lock=False) as store:
            one = read_map(store, info.label)
        for p in one.points:
            p.role = roles.get((info.label, p.model), p.role)
        points += one.points
        if not data.countries or not data.note:
            data = MapData(points=[], countries=one.countries, note=one.note)
    data.points = points
    for s in map_paired(data, resamples=resamples, seed=seed):
        comp.paired.append(
            PairedStat(
                culture=s["culture"],
                metric=DISTANCE_METRIC,
                row=s["row"],
                baseline=s["baseline"],
                kind="adapted vs base",
                unit=UNIT_PERSONAS,
                n=s["n"],
                diff=s["diff"],
                ci_low=s["ci_low"],
                ci_high=s["ci_high"],
                n_items=0,
                p=None,
                p_holm=None,
            )  # fmt: skip
        )
    return data
