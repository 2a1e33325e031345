"""Paired statistics of a comparison: each adapted row against its run's base row, every row against a
chosen `--baseline` row, and each adapted row against the reference arm's (`--reference-arm`).

A `PairedStat` holds the mean paired difference (row minus baseline) with its bootstrap interval, the
Wilcoxon p-value (Holm-adjusted across cultures together with the specificity tests of the same pair and
metric, see `_specificity`), and the minimum detectable effect of the comparison (`_power`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ConfigError
from ._compare_rows import CompareRow, ComparisonData
from ._metrics import METRICS
from ._power import minimum_detectable
from ._stats import holm, paired_bootstrap, paired_differences, wilcoxon_p

UNIT_ITEMS = "questions"
UNIT_PERSONAS = "personas"
ALPHA = 0.05
KIND_BASE = "adapted vs base"
KIND_BASELINE = "vs baseline"
KIND_REFERENCE = "vs reference arm"


class PairedStat(BaseModel):
    culture: str
    metric: str
    row: str = Field(description="run:model:style")
    baseline: str = Field(description="run:model:style")
    kind: str = Field(description=f"'{KIND_BASE}' (same run), '{KIND_BASELINE}' or '{KIND_REFERENCE}'")
    unit: str = Field(description="what the bootstrap resamples: questions or personas")
    n: int = Field(description="paired units in the bootstrap")
    diff: float = Field(description="mean of row minus baseline over the paired units")
    ci_low: float
    ci_high: float
    n_items: int = Field(description="paired questions in the Wilcoxon test")
    p: float | None = Field(None, description="Wilcoxon signed-rank, two-sided, over questions")
    p_holm: float | None = Field(
        None, description="Holm-adjusted across cultures and the pair's specificity tests (per pair and metric)"
    )
    sd: float | None = Field(None, description="standard deviation of the paired differences (the bootstrap's units)")
    mde: float | None = Field(None, description="minimum detectable effect: paired t, two-sided alpha 0.05, power 0.8")
    reading: str = Field("", description="the result in words, e.g. 'no significant change; detectable: 0.012'")


def significant(p_holm: float | None, p: float | None) -> bool:
    """Significant at ALPHA: the Holm-adjusted p when there is one, else the raw p."""
    q = p_holm if p_holm is not None else p
    return q is not None and q < ALPHA


def fmt_mde(mde: float | None) -> str:
    return "n/a" if mde is None else f"{mde:.3g}"


def reading(stat: PairedStat) -> str:
    """'significant: lower (better)' or 'no significant change; detectable: 0.012'."""
    if significant(stat.p_holm, stat.p):
        lower_better = METRICS.get(stat.metric, ("", True))[1]
        lower = stat.diff < 0
        better = lower == lower_better
        return f"significant: {'lower' if lower else 'higher'} ({'better' if better else 'worse'})"
    return f"no significant change; detectable: {fmt_mde(stat.mde)}"


def pair_rows(
    row: CompareRow, base: CompareRow, kind: str, resamples: int, seed: int, same_personas: bool
) -> list[PairedStat]:
    """Every metric both rows have, row minus base: bootstrap, Wilcoxon and the detectable effect."""
    out = []
    for metric in METRICS:
        a, b = row.per_item.get(metric), base.per_item.get(metric)
        if not a or not b:
            continue
        d_items = paired_differences(a, b)
        if not d_items:
            continue
        unit, diffs = UNIT_ITEMS, list(d_items.values())
        if metric == "accuracy" and same_personas and row.per_persona_accuracy and base.per_persona_accuracy:
            d_p = paired_differences(row.per_persona_accuracy, base.per_persona_accuracy)
            if d_p:
                unit, diffs = UNIT_PERSONAS, list(d_p.values())
        mean, lo, hi = paired_bootstrap(diffs, resamples=resamples, seed=seed)
        sd, mde = minimum_detectable(diffs)
        out.append(
            PairedStat(
                culture=row.culture,
                metric=metric,
                row=row.ident,
                baseline=base.ident,
                kind=kind,
                unit=unit,
                n=len(diffs),
                diff=mean,
                ci_low=lo,
                ci_high=hi,
                n_items=len(d_items),
                p=wilcoxon_p(list(d_items.values())),
                sd=None if sd != sd else sd,
                mde=mde,
            )
        )
    return out


def reference_partner(rows: Sequence[CompareRow], row: CompareRow, ref_run: str) -> CompareRow | None:
    """The reference arm's adapted row for `row`: same culture and style, the same model alias when the arm
    has it, else the arm's only adapted alias."""
    key = (row.culture, row.style)
    cand = [r for r in rows if r.run == ref_run and r.role == "adapted" and (r.culture, r.style) == key]
    same = [r for r in cand if r.model == row.model]
    if same:
        return same[0]
    return cand[0] if len({r.model for r in cand}) == 1 else None


def paired_stats(comp: ComparisonData, same_personas: Any, baseline: str | None) -> list[PairedStat]:
    """Adapted vs base (same run), every row vs `baseline` (RUN:MODEL:STYLE), and every other run's adapted
    rows vs the reference arm (`comp.reference_arm`). Holm is applied later, with the specificity tests."""
    out: list[PairedStat] = []
    by = {(r.culture, r.run, r.model, r.style): r for r in comp.rows}
    for r in comp.rows:
        if r.role != "adapted":
            continue
        same = (r.culture, r.run, r.style)
        base = next((b for b in comp.rows if b.role == "base" and (b.culture, b.run, b.style) == same), None)
        if base is not None:
            out += pair_rows(r, base, KIND_BASE, comp.resamples, comp.seed, True)
    if baseline is not None:
        parts = baseline.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--baseline {baseline!r}: write it as RUN:MODEL:STYLE, e.g. demo:base:persona")
        run, model, style = parts
        if not any((r.run, r.model, r.style) == (run, model, style) for r in comp.rows):
            have = ", ".join(sorted({r.ident for r in comp.rows}))
            raise ConfigError(f"--baseline {baseline!r}: no such row; rows: {have}")
        for r in comp.rows:
            base = by.get((r.culture, run, model, style))
            if base is None or base is r:
                continue
            out += pair_rows(r, base, KIND_BASELINE, comp.resamples, comp.seed, same_personas(r.run, run))
    if comp.reference_arm is not None:
        for r in comp.rows:
            if r.role != "adapted" or r.run == comp.reference_arm:
                continue
            ref = reference_partner(comp.rows, r, comp.reference_arm)
            if ref is not None:
                out += pair_rows(r, ref, KIND_REFERENCE, comp.resamples, comp.seed, same_personas(r.run, ref.run))
    return out


def adjust(paired: list[PairedStat], extra: dict[tuple[str, str, str, str], list[Any]]) -> None:
    """Holm within each family (kind, row, baseline, metric): the pair's cultures plus the `extra` tests of the
    same family (objects with `p` and `p_holm`); then each paired stat's reading."""
    families: dict[tuple[str, str, str, str], list[Any]] = {}
    for s in paired:
        families.setdefault((s.kind, s.row, s.baseline, s.metric), []).append(s)
    for key, more in extra.items():
        families.setdefault(key, []).extend(more)
    for fam in families.values():
        for s, adj in zip(fam, holm([s.p for s in fam]), strict=True):
            s.p_holm = adj
    for s in paired:
        s.reading = reading(s)
