"""Exports of a `Comparison` a paper can use: tidy tables (CSV and Parquet) and LaTeX tables (booktabs).

Tidy tables, one observation per line:
  metrics          run, run_dir, dataset_variant, model, model_string, style, culture, role, metric,
                   value, ci_low, ci_high, n, marked
  metrics_per_item run, model, style, culture, metric, item, value
  distributions    run, model, style, culture, item, option, model_share, survey_share
  paired           culture, metric, row, baseline, kind, unit, n, diff, ci_low, ci_high, n_items, p, p_holm,
                   sd, mde, reading  (mde: the minimum detectable effect, see _power)
  specificity      kind, row, reference, metric, target, comparison, n_items, target_diff, comparison_diff,
                   did, ci_low, ci_high, p, p_holm, sd, mde, rank_reference, rank_row, cultures, verdict, reading
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ._compare import BASE_GROUP, CompareRow, Comparison, best_values
from ._metrics import METRICS

TABLES = ("metrics", "metrics_per_item", "distributions", "paired", "specificity")
SPECIFICITY_COLUMNS = [
    "kind",
    "row",
    "reference",
    "metric",
    "target",
    "comparison",
    "n_items",
    "target_diff",
    "comparison_diff",
    "did",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "sd",
    "mde",
    "rank_reference",
    "rank_row",
    "cultures",
    "verdict",
    "reading",
]


def tidy_frames(comp: Comparison) -> dict[str, pd.DataFrame]:
    """The comparison as tidy data frames (column order fixed, see the module docstring)."""
    paths = {r.label: r.path for r in comp.runs}
    metrics = [
        {
            "run": r.run,
            "run_dir": paths[r.run],
            "dataset_variant": r.dataset_variant,
            "model": r.model,
            "model_string": r.model_string,
            "style": r.style,
            "culture": r.culture,
            "role": r.role,
            "metric": m,
            "value": e.value,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "n": e.n,
            "marked": r.marked,
        }
        for r in comp.rows
        for m, e in r.values.items()
    ]
    per_item = [
        {"run": r.run, "model": r.model, "style": r.style, "culture": r.culture, "metric": m, "item": i, "value": v}
        for r in comp.rows
        for m, vals in r.per_item.items()
        for i, v in vals.items()
    ]
    cols = {
        "metrics": [
            "run",
            "run_dir",
            "dataset_variant",
            "model",
            "model_string",
            "style",
            "culture",
            "role",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "n",
            "marked",
        ],
        "metrics_per_item": ["run", "model", "style", "culture", "metric", "item", "value"],
        "distributions": ["run", "model", "style", "culture", "item", "option", "model_share", "survey_share"],
        "paired": [
            "culture",
            "metric",
            "row",
            "baseline",
            "kind",
            "unit",
            "n",
            "diff",
            "ci_low",
            "ci_high",
            "n_items",
            "p",
            "p_holm",
            "sd",
            "mde",
            "reading",
        ],
        "specificity": SPECIFICITY_COLUMNS,
    }
    data = {
        "metrics": metrics,
        "metrics_per_item": per_item,
        "distributions": [d.model_dump() for d in comp.distributions],
        "paired": [p.model_dump() for p in comp.paired],
        "specificity": [s.model_dump() for s in comp.specificity],
    }
    frames = {}
    for name in TABLES:
        df = pd.DataFrame(data[name], columns=cols[name])
        for c in ("item", "option"):
            if c in df:
                df[c] = df[c].astype(str)
        frames[name] = df
    return frames


def write_tables(comp: Comparison, out: Path) -> list[Path]:
    """Write every tidy table as OUT/<name>.csv and OUT/<name>.parquet; returns the paths."""
    written = []
    for name, df in tidy_frames(comp).items():
        csv, pq = out / f"{name}.csv", out / f"{name}.parquet"
        df.to_csv(csv, index=False)
        df.to_parquet(pq, index=False)
        written += [csv, pq]
    return written


_TEX_ESCAPE = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def tex(s: str) -> str:
    """Text safe in LaTeX."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(s))


def _cell(row: CompareRow, metric: str, best: dict[str, float]) -> str:
    e = row.values.get(metric)
    if e is None or not math.isfinite(e.value):
        return "--"
    v = f"{e.value:.3f}"
    if best.get(metric) == e.value:
        v = rf"\textbf{{{v}}}"
    if e.ci_low is not None and e.ci_high is not None:
        v += rf" {{\scriptsize[{e.ci_low:.3f}, {e.ci_high:.3f}]}}"
    return v


def latex_table(comp: Comparison, rows: list[CompareRow], *, caption: str, label: str, group_col: bool) -> str:
    """One booktabs table: a block per culture, the best value per culture and metric in bold."""
    metrics = comp.metrics
    best = best_values(rows)
    head = ["Run", "Model", "Style"] + (["Dataset"] if group_col else []) + [tex(METRICS[m][0]) for m in metrics]
    ncols = len(head)
    lines = [
        r"% generated by clca compare; needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering\small",
        r"\begin{tabular}{" + "lll" + ("l" if group_col else "") + "r" * len(metrics) + "}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    for i, culture in enumerate(comp.cultures):
        block = [r for r in rows if r.culture == culture]
        if not block:
            continue
        if i and lines[-1] != r"\midrule":
            lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{{tex(culture)}}}}} \\")
        for r in block:
            cells = [tex(r.run) + (r"$^\dagger$" if r.marked else ""), tex(r.model), tex(r.style)]
            if group_col:
                cells.append(tex(r.dataset_variant))
            cells += [_cell(r, m, best.get(culture, {})) for m in metrics]
            lines.append(" & ".join(cells) + r" \\")
    arrows = ", ".join(f"{METRICS[m][0]} {'lower' if METRICS[m][1] else 'higher'}" for m in metrics)
    note = (
        "Mean over questions with its 95\\% bootstrap interval; "
        f"bold: best in this table per culture ({tex(arrows)} is better)."
    )
    if any(r.marked for r in rows):
        note += r" $^\dagger$: evaluation setup differs from the first run."
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{tex(caption)} {note}}}",
        rf"\label{{{label}}}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


def write_latex(comp: Comparison, out: Path) -> list[Path]:
    """OUT/table_main.tex (every row) and OUT/table_ablations.tex (adapted rows by dataset variant)."""
    main = out / "table_main.tex"
    main.write_text(
        latex_table(
            comp,
            comp.rows,
            caption="WVS alignment per culture, model and prompt style.",
            label="tab:clca-main",
            group_col=False,
        ),
        encoding="utf-8",
    )
    # in the table order: by culture, variant, run; runs without a config (clca eval) have no variant
    abl_rows = [r for r in comp.rows if r.group != BASE_GROUP and r.dataset_variant is not None]
    abl = out / "table_ablations.tex"
    abl.write_text(
        latex_table(
            comp,
            abl_rows,
            caption="Ablations: the adapted student by training-data variant.",
            label="tab:clca-ablations",
            group_col=True,
        ),
        encoding="utf-8",
    )
    paired = out / "table_paired.tex"
    paired.write_text(paired_latex(comp), encoding="utf-8")
    spec = out / "table_specificity.tex"
    spec.write_text(specificity_latex(comp), encoding="utf-8")
    return [main, abl, paired, spec]


def _num(x: float | None, fmt: str = "{:+.3f}") -> str:
    return "--" if x is None or not math.isfinite(x) else fmt.format(x)


def _p(x: float | None) -> str:
    return "--" if x is None else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


def _wrap(spec: str, head: list[str], body: list[str], caption: str, label: str) -> str:
    return "\n".join(
        [
            r"% generated by clca compare; needs \usepackage{booktabs}",
            r"\begin{table}[t]",
            r"\centering\small",
            r"\begin{tabular}{" + spec + "}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
            *(body or [rf"\multicolumn{{{len(head)}}}{{l}}{{none}} \\"]),
            r"\bottomrule",
            r"\end{tabular}",
            rf"\caption{{{caption}}}",
            rf"\label{{{label}}}",
            r"\end{table}",
            "",
        ]
    )


def paired_latex(comp: Comparison) -> str:
    """Every paired difference with its CI, Wilcoxon p, Holm p and minimum detectable effect."""
    body = [
        " & ".join(
            [
                tex(p.culture),
                tex(p.row),
                tex(p.baseline),
                tex(METRICS.get(p.metric, (p.metric,))[0]),
                f"{_num(p.diff)} {{\\scriptsize[{_num(p.ci_low)}, {_num(p.ci_high)}]}}",
                _p(p.p),
                _p(p.p_holm),
                _num(p.mde, "{:.3f}"),
            ]
        )
        + r" \\"
        for p in comp.paired
    ]
    caption = (
        "Paired differences (row minus baseline, mean over questions with its 95\\% bootstrap interval), "
        "two-sided Wilcoxon signed-rank p and its Holm adjustment; MDE: the smallest difference a two-sided "
        "paired t-test would detect with power 0.8 at $\\alpha=0.05$, from the observed standard deviation "
        "of the paired differences."
    )
    head = ["Culture", "Row", "Baseline", "Metric", "Difference", "$p$", "$p$ (Holm)", "MDE"]
    return _wrap("llllrrrr", head, body, caption, "tab:clca-paired")


def specificity_latex(comp: Comparison) -> str:
    """Every difference-in-differences with its CI, p values, MDE, rank change and verdict."""
    body = []
    for s in comp.specificity:
        rank = "--" if s.rank_change is None else f"{s.rank_reference}$\\to${s.rank_row} / {s.cultures}"
        cells = [
            tex(s.row),
            tex(s.reference),
            tex(METRICS.get(s.metric, (s.metric,))[0]),
            f"{tex(s.target)} vs {tex(s.comparison)}",
            _num(s.target_diff),
            _num(s.comparison_diff),
            f"{_num(s.did)} {{\\scriptsize[{_num(s.ci_low)}, {_num(s.ci_high)}]}}",
            _p(s.p_holm),
            _num(s.mde, "{:.3f}"),
            rank,
            tex(s.verdict),
        ]
        body.append(" & ".join(cells) + r" \\")
    caption = (
        "Specificity: the target's change minus the comparison culture's change per shared question "
        "(difference-in-differences, DiD, with its 95\\% bootstrap interval), Holm-adjusted Wilcoxon $p$, "
        "its MDE, and the target's rank among all cultures (reference $\\to$ row). Specific: the DiD favours "
        "the target significantly and the target improved; generic: the target improved significantly but "
        "not more than the comparison culture; absent: no significant improvement of the target."
    )
    head = ["Row", "Reference", "Metric", "Cultures", "$\\Delta$ target", "$\\Delta$ comparison", "DiD"]
    head += ["$p$ (Holm)", "MDE", "Rank", "Verdict"]
    return _wrap("llllrrrrrll", head, body, caption, "tab:clca-specificity")
