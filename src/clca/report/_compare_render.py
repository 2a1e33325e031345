"""`write_comparison`: the comparison report of several runs (compare.html + summary.md), the tidy tables,
LaTeX tables and figures, all written into one folder. Everything is written into a temporary folder
beside OUT first and moved into place only when all of it succeeded, so a failure leaves no half-written
output."""

from __future__ import annotations

import base64
import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..errors import ConfigError
from ._compare import UNIT_ITEMS, UNIT_PERSONAS, Comparison, build_comparison
from ._export import write_latex, write_tables
from ._figures import Figure, write_figures
from ._metrics import METRICS
from ._render import _env

RESAMPLING_NOTE = (
    "Paired bootstrap (percentile, {resamples} resamples, seed {seed}): the unit of resampling is the "
    f"question (unit '{UNIT_ITEMS}') for every metric, and the persona (unit '{UNIT_PERSONAS}') for individual "
    "accuracy when both rows asked the same personas; the difference is row minus baseline, averaged over the "
    "paired units. "
    "p: two-sided Wilcoxon signed-rank test over questions (scipy.stats.wilcoxon, zero differences dropped); "
    "p (Holm): Holm-adjusted across cultures, one family per compared pair and metric."
)


@dataclass
class ComparePaths:
    out: Path
    html: Path
    markdown: Path
    files: list[Path] = field(default_factory=list)
    environment_notes: list[str] = field(default_factory=list)


def _context(comp: Comparison, figures: list[Figure]) -> dict[str, Any]:
    def uri(f: Figure) -> Markup:
        return Markup("data:image/png;base64," + base64.b64encode(f.png).decode("ascii"))

    groups: dict[str, list[list[Any]]] = {}
    for c in comp.cultures:
        blocks: list[list[Any]] = []
        for r in comp.rows_of(c):
            if not blocks or blocks[-1][0] != r.group:
                blocks.append([r.group, []])
            blocks[-1][1].append(r)
        groups[c] = blocks
    return {
        "comp": comp,
        "groups": groups,
        "metric_titles": {k: v[0] for k, v in METRICS.items()},
        "lower_better": {k: v[1] for k, v in METRICS.items()},
        "figures": [(f, uri(f)) for f in figures],
        "resampling": RESAMPLING_NOTE.format(resamples=comp.resamples, seed=comp.seed),
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_compare_html(comp: Comparison, figures: list[Figure]) -> str:
    return _env().get_template("compare.html.j2").render(**_context(comp, figures))


def render_compare_markdown(comp: Comparison, figures: list[Figure]) -> str:
    return _env().get_template("compare.md.j2").render(**_context(comp, figures)).strip() + "\n"


def _culture(text: str, have: list[str]) -> str:
    from ..wvs import resolve_country

    code = resolve_country(text, set(have))
    if code not in have:
        raise ConfigError(f"--culture {text!r}: not evaluated in these runs; cultures: {', '.join(have)}")
    return code


def write_comparison(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    allow_different: bool = False,
    baseline: str | None = None,
    culture: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
    figures: bool = True,
) -> ComparePaths:
    """Compare the runs and write OUT/compare.html, OUT/summary.md, the tidy tables (CSV + Parquet), the
    LaTeX tables and (unless figures=False) the figures (PDF + PNG + CSV)."""
    comp = build_comparison(
        run_dirs, allow_different=allow_different, baseline=baseline, resamples=resamples, seed=seed
    )
    if culture is not None:
        culture = _culture(culture, comp.cultures)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = write_tables(comp, tmp) + write_latex(comp, tmp)
        figs = write_figures(comp, tmp, culture) if figures else []
        files += [p for f in figs for p in f.files]
        html, md = tmp / "compare.html", tmp / "summary.md"
        html.write_text(render_compare_html(comp, figs), encoding="utf-8")
        md.write_text(render_compare_markdown(comp, figs), encoding="utf-8")
        (tmp / "comparison.json").write_text(comp.model_dump_json(indent=1), encoding="utf-8")
        files += [html, md, tmp / "comparison.json"]
        out.mkdir(exist_ok=True)
        final = []
        for p in files:
            os.replace(p, out / p.name)
            final.append(out / p.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    notes = [f"environment of {r.label} differs: {'; '.join(r.environment_differs)}" for r in comp.runs]
    return ComparePaths(
        out=out,
        html=out / "compare.html",
        markdown=out / "summary.md",
        files=final,
        environment_notes=[n for n, r in zip(notes, comp.runs, strict=True) if r.environment_differs],
    )
