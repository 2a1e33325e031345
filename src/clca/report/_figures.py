"""Figures of a `Comparison` with matplotlib (Agg backend, no display): each written as PDF and PNG with
its data beside it as CSV, and returned as PNG bytes (the compare report); or, for the single-run report
(`clca report`, whose page holds no <img> elements), written as SVG and returned as inline SVG markup.

- kl_per_culture: KL to the survey per culture, one bar per (run, model, style), 95 % CI whiskers;
- ablations: the adapted student's KL and 1-JSD per dataset variant (run) and culture, with CIs;
- items_<culture>: per-question small multiples of the model's answer distribution vs the survey's;
- dose_response: KL to the target and the comparison cultures against training steps (`_dose`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ._compare import BASE_GROUP, Comparison
from ._metrics import METRICS

MAX_SERIES_ITEMS = 4  # model rows drawn in the per-question small multiples, besides the survey
MAX_ITEMS = 16


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: bytes
    files: tuple[Path, ...]
    svg: str | None = None  # the <svg> element alone (no XML prolog), when asked for


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _svg_text(fig) -> str:
    """The figure as an SVG document: text drawn as paths (matplotlib's default), so no label text (model
    aliases, run names) reaches a page as markup; ids seeded so a re-render is byte-identical."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "clca", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _save(fig, out: Path, name: str, title: str, data: pd.DataFrame, svg: bool = False) -> Figure:
    """Write the figure as PDF + PNG (svg=False: the compare report, a paper) or as SVG (svg=True: the
    single-run report, which inlines it), with its data as CSV beside it."""
    plt = _pyplot()
    csv = out / f"{name}.csv"
    if svg:
        text = _svg_text(fig)
        plt.close(fig)
        path = out / f"{name}.svg"
        path.write_text(text, encoding="utf-8")
        data.to_csv(csv, index=False)
        markup = text[text.index("<svg") :].strip()  # the element alone: no XML prolog inside HTML
        return Figure(name=name, title=title, png=b"", files=(path, csv), svg=markup)
    pdf, png = out / f"{name}.pdf", out / f"{name}.png"
    fig.savefig(pdf, metadata={"CreationDate": None})
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    png.write_bytes(buf.getvalue())
    data.to_csv(csv, index=False)
    return Figure(name=name, title=title, png=buf.getvalue(), files=(pdf, png, csv))


def _bars(ax, groups: list[str], series: list[str], data: pd.DataFrame, key: str) -> None:
    """Grouped bars: x = groups, one bar per series, whiskers from ci_low/ci_high."""
    import numpy as np

    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, s in enumerate(series):
        sub = data[data["series"] == s].set_index(key)
        sub = sub[~sub.index.duplicated()]  # one bar per group and series
        vals = [float(sub["value"].get(g, np.nan)) for g in groups]
        lo = [float(sub["ci_low"].get(g, np.nan)) for g in groups]
        hi = [float(sub["ci_high"].get(g, np.nan)) for g in groups]
        err = np.array(
            [
                [v - a if a == a else 0.0 for v, a in zip(vals, lo, strict=True)],
                [b - v if b == b else 0.0 for v, b in zip(vals, hi, strict=True)],
            ]
        )
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=s)
    ax.set_xticks(x, groups)
    ax.legend(fontsize=7, frameon=False)


def _metric_frame(comp: Comparison, metric: str, adapted_only: bool = False) -> pd.DataFrame:
    """Rows of one metric; `adapted_only`: the adapted students of runs with a dataset variant (the ablations)."""
    recs = []
    aliases: dict[tuple[str, str], set[str]] = {}
    for r in comp.rows:
        if r.group != BASE_GROUP:
            aliases.setdefault((r.run, r.style), set()).add(r.model)
    for r in comp.rows:
        e = r.values.get(metric)
        if e is None or (adapted_only and (r.group == BASE_GROUP or r.dataset_variant is None)):
            continue
        series = f"{r.run} · {r.model} · {r.style}"
        if adapted_only:
            several = len(aliases.get((r.run, r.style), ())) > 1
            series = f"{r.dataset_variant} ({r.run}, {r.model + ', ' if several else ''}{r.style})"
        recs.append(
            {
                "culture": r.culture,
                "series": series,
                "run": r.run,
                "model": r.model,
                "style": r.style,
                "dataset_variant": r.dataset_variant,
                "metric": metric,
                "value": e.value,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
            }
        )
    return pd.DataFrame(
        recs,
        columns=[
            "culture",
            "series",
            "run",
            "model",
            "style",
            "dataset_variant",
            "metric",
            "value",
            "ci_low",
            "ci_high",
        ],
    )


def kl_per_culture(comp: Comparison, out: Path, svg: bool = False) -> Figure | None:
    data = _metric_frame(comp, "kl")
    if data.empty:
        return None
    plt = _pyplot()
    series = list(dict.fromkeys(data["series"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.5 * len(series) * len(comp.cultures)), 3.4))
    _bars(ax, comp.cultures, series, data, "culture")
    ax.set_ylabel("KL(model || survey), nats")
    ax.set_title("KL to the survey per culture\n(lower is better; whiskers: 95% CI over questions)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "kl_per_culture", "KL per culture", data, svg)


def ablations(comp: Comparison, out: Path, svg: bool = False) -> Figure | None:
    frames = [_metric_frame(comp, m, adapted_only=True) for m in ("kl", "similarity")]
    data = pd.concat([f for f in frames if not f.empty]) if any(not f.empty for f in frames) else None
    if data is None:
        return None
    plt = _pyplot()
    metrics = list(dict.fromkeys(data["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        sub = data[data["metric"] == m]
        _bars(ax, comp.cultures, list(dict.fromkeys(sub["series"])), sub, "culture")
        better = "lower" if METRICS[m][1] else "higher"
        ax.set_title(f"{METRICS[m][0]} of the adapted student by dataset variant ({better} is better)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "ablations", "Ablations", data, svg)


def item_distributions(comp: Comparison, out: Path, culture: str, svg: bool = False) -> Figure | None:
    dist = pd.DataFrame([d.model_dump() for d in comp.distributions if d.culture == culture])
    if dist.empty:
        return None
    dist["series"] = dist["run"] + " · " + dist["model"] + " · " + dist["style"]
    series = list(dict.fromkeys(dist["series"]))[:MAX_SERIES_ITEMS]
    items = sorted(dict.fromkeys(dist["item"]), key=lambda q: (q.rstrip("0123456789"), len(q), q))[:MAX_ITEMS]
    survey = dist[dist["series"] == series[0]][["item", "option", "survey_share"]]
    long = pd.concat(
        [
            survey.rename(columns={"survey_share": "share"}).assign(series="survey"),
            dist[dist["series"].isin(series)][["item", "option", "model_share", "series"]].rename(
                columns={"model_share": "share"}
            ),
        ]
    )
    long = long[long["item"].isin(items)][["item", "option", "series", "share"]]
    plt = _pyplot()
    import numpy as np

    ncols = min(4, len(items))
    nrows = (len(items) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.2 * nrows), squeeze=False)
    names = ["survey", *series]
    width = 0.8 / len(names)
    for ax, item in zip(axes.flat, items, strict=False):
        sub = long[long["item"] == item]
        options = list(dict.fromkeys(sub["option"]))
        x = np.arange(len(options))
        for k, s in enumerate(names):
            vals = sub[sub["series"] == s].set_index("option")["share"]
            ax.bar(x + (k - (len(names) - 1) / 2) * width, [float(vals.get(o, 0.0)) for o in options], width, label=s)
        ax.set_xticks(x, ["sg" if o == "safeguarded" else o for o in options], fontsize=6)
        ax.set_title(item, fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="y", labelsize=6)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(names)), fontsize=7, frameon=False)
    fig.suptitle(f"{culture}: answer shares per question, models vs survey (sg = safeguarded)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(names) // 3), 1, 0.95))
    safe = "".join(ch if ch.isalnum() else "_" for ch in culture)
    return _save(fig, out, f"items_{safe}", f"{culture}: per-question distributions", long, svg)


def write_figures(
    comp: Comparison, out: Path, culture: str | None = None, *, ablation: bool = True, svg: bool = False
) -> list[Figure]:
    """Every figure (PDF, PNG, CSV) into OUT; `culture` picks the small multiples' culture (default: the
    first target culture of the first run, else the first culture). `ablation=False` leaves out the
    ablation bars (one run has one dataset variant); `svg=True` writes SVG instead of PDF + PNG and returns
    each figure's inline SVG markup."""
    figs = [kl_per_culture(comp, out, svg), ablations(comp, out, svg) if ablation else None]
    figs.append(dose_response(comp, out, svg))
    if culture is None:
        targets = [c for c in (comp.runs[0].targets if comp.runs else []) if c in comp.cultures]
        culture = (targets or comp.cultures or [None])[0]
    if culture is not None:
        figs.append(item_distributions(comp, out, culture, svg))
    return [f for f in figs if f is not None]


def dose_response(comp: Comparison, out: Path, svg: bool = False) -> Figure | None:
    """The dose-response figure (PDF + PNG + CSV, or SVG), or None without a dose series."""
    from ._dose import dose_frame

    data = dose_frame(comp)
    if data.empty:
        return None
    plt = _pyplot()
    names = list(dict.fromkeys(data["series"]))
    has_did = bool((data["role"] == "did").any())
    rows = 2 if has_did else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(4.6 * len(names), 3.2 * rows), squeeze=False)
    for k, name in enumerate(names):
        sub = data[data["series"] == name]
        _dose_lines(axes[0][k], sub[sub["role"] != "did"])
        axes[0][k].set_ylabel("KL(model || survey), nats")
        title = f"{name}: KL against training steps\n(lower is better; whiskers: 95% CI over questions)"
        axes[0][k].set_title(title, fontsize=9)
        if has_did:
            ax = axes[1][k]
            _dose_lines(ax, sub[sub["role"] == "did"])
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.set_ylabel("KL change, target minus comparison")
            ax.set_title("specificity vs base (below 0: the target moved more)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "dose_response", "Dose-response: KL against training steps", data, svg)


def _dose_lines(ax: Any, data: pd.DataFrame) -> None:
    """One line per culture (or culture pair), style and role, with CI whiskers."""
    for (culture, style, role), line in data.groupby(["culture", "style", "role"], sort=True):
        lo = (line["value"] - line["ci_low"]).fillna(0.0).clip(lower=0.0)
        hi = (line["ci_high"] - line["value"]).fillna(0.0).clip(lower=0.0)
        ax.errorbar(line["steps"], line["value"], yerr=[lo, hi], marker="o", capsize=3,
                    linestyle="--" if role == "comparison" else "-", label=f"{culture} ({role}, {style})")  # fmt: skip
    ax.set_xlabel("training steps (0 = base model)")
    if len(data):
        ax.legend(fontsize=7, frameon=False)
