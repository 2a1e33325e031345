"""`write_comparison`: the comparison report of several runs (compare.html + summary.md), the tidy tables,
LaTeX tables and figures, all written into one folder. Everything is written into a temporary folder
beside OUT first and moved into place only when all of it succeeded, so a failure leaves no half-written
output."""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..errors import ConfigError
from ._compare import UNIT_ITEMS, UNIT_PERSONAS, Comparison, build_comparison
from ._export import write_latex, write_tables
from ._figures import Figure, write_figures
from ._map import comparison_map, map_figure
from ._metrics import METRICS
from ._power import ASSUMED_TEST
from ._render import _env

RESAMPLING_NOTE = (
    "Paired bootstrap (percentile, {resamples} resamples, seed {seed}): the unit of resampling is the "
    f"question (unit '{UNIT_ITEMS}') for every metric, and the persona (unit '{UNIT_PERSONAS}') for individual "
    "accuracy when both rows asked the same personas; the difference is row minus baseline, averaged over the "
    "paired units. "
    "p: two-sided Wilcoxon signed-rank test over questions (scipy.stats.wilcoxon, zero differences dropped); "
    "p (Holm): Holm-adjusted across cultures, one family per compared pair and metric (with the pair's "
    f"specificity tests). {ASSUMED_TEST[0].upper() + ASSUMED_TEST[1:]}."
)
SPECIFICITY_NOTE = (
    "Difference-in-differences (DiD): per question shared by the four rows, the target culture's change minus "
    "the comparison culture's change (row minus reference), averaged; paired bootstrap interval over questions, "
    "Wilcoxon signed-rank p, Holm with the pair's per-culture tests. For a lower-is-better metric (KL) a negative "
    "DiD means the target moved more than the comparison culture. Target rank: the target's rank among all "
    "cultures of the reference table by the model's 1-JSD similarity (reference -> row; 1 = closest). "
    "References: each run's base model, and the reference arm{arm}. Verdict: specific (the DiD favours the "
    "target significantly and the target improved), generic (the target improved significantly, but not more "
    "than the comparison culture), absent (no significant improvement of the target)."
)


@dataclass
class ComparePaths:
    out: Path
    html: Path
    markdown: Path
    files: list[Path] = field(default_factory=list)
    comp: Comparison | None = None
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
        "specificity_note": SPECIFICITY_NOTE.format(
            arm=f" ({comp.reference_arm}'s student)" if comp.reference_arm else " (none in these runs)"
        ),
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
    reference_arm: str | None = None,
    target: str | None = None,
    overwrite: bool = False,
) -> ComparePaths:
    """Compare the runs and write OUT/compare.html, OUT/summary.md, the tidy tables (CSV + Parquet), the
    LaTeX tables and (unless figures=False) the figures (PDF + PNG + CSV)."""
    from .._files import atomic_dir
    from .._outputs import check_output

    dest = check_output(out, kind="dir", inputs=run_dirs, overwrite=overwrite, own=("compare.html",))
    comp = build_comparison(
        run_dirs,
        allow_different=allow_different,
        baseline=baseline,
        resamples=resamples,
        seed=seed,
        reference_arm=reference_arm,
        target=target,
    )
    if culture is not None:
        culture = _culture(culture, comp.cultures)
    map_data = comparison_map(comp, resamples=resamples, seed=seed)  # adds the map's paired distances
    out = Path(out)
    with atomic_dir(dest, True) as tmp:  # compare.html marks it as clca's
        files = write_tables(comp, tmp) + write_latex(comp, tmp)
        figs = write_figures(comp, tmp, culture) if figures else []
        cmap = map_figure(map_data, tmp, comp.cultures, comp.runs[0].targets, svg=False) if figures else None
        figs += [cmap] if cmap is not None else []
        files += [p for f in figs for p in f.files]
        html, md = tmp / "compare.html", tmp / "summary.md"
        html.write_text(render_compare_html(comp, figs), encoding="utf-8")
        md.write_text(render_compare_markdown(comp, figs), encoding="utf-8")
        (tmp / "comparison.json").write_text(comp.model_dump_json(indent=1), encoding="utf-8")
        files += [html, md, tmp / "comparison.json"]
    final = [out / p.name for p in files]
    notes = [f"environment of {r.label} differs: {'; '.join(r.environment_differs)}" for r in comp.runs]
    return ComparePaths(
        out=out,
        html=out / "compare.html",
        markdown=out / "summary.md",
        files=final,
        comp=comp,
        environment_notes=[n for n, r in zip(notes, comp.runs, strict=True) if r.environment_differs],
    )


def terminal_lines(comp: Comparison, metric: str = "kl") -> list[str]:
    """The headline for the terminal: each paired difference of `metric` on a target culture (against base and
    the reference arm) with its CI, Holm p and detectable effect, and each specificity verdict."""
    title = METRICS.get(metric, (metric, True))[0]
    targets = {(run, c) for run, cs in comp.targets.items() for c in cs}
    shown, seen = [], set()
    for p in comp.paired:
        if p.metric != metric or (p.row, p.baseline, p.culture) in seen:
            continue
        if (p.row.split(":", 1)[0], p.culture) in targets or not targets:
            shown.append(p)
            seen.add((p.row, p.baseline, p.culture))
    lines = []
    if shown:
        lines.append(f"{title}, row minus baseline [95% CI], p (Holm), detectable (paired t, alpha 0.05, power 0.8):")
    for p in shown:
        lines.append(
            f"  {p.culture} {p.row} vs {p.baseline}: {p.diff:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}], "
            f"p (Holm) {_p(p.p_holm)}, {p.reading}"
        )
    spec = [s for s in comp.specificity if s.metric == metric]
    if spec:
        lines.append(f"specificity ({title}: target change minus comparison change per shared question):")
    for s in spec:
        lines.append(
            f"  {s.target} vs {s.comparison}, {s.row} vs {s.reference}: DiD {s.did:+.4f} "
            f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}], p (Holm) {_p(s.p_holm)}: {s.reading}"
        )
    return lines


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"
