"""Specificity of a paired difference: did the target culture move more than the comparison cultures?

For a row (an adapted student) against a reference (its run's base model, or the reference arm's student)
and a target culture T of the row's run, each comparison culture C that both rows were evaluated on gives
the difference-in-differences over the questions all four rows share:

    DiD(q) = (row_T(q) - ref_T(q)) - (row_C(q) - ref_C(q))

its mean with a paired bootstrap interval over questions, a two-sided Wilcoxon signed-rank p (Holm-adjusted
with the pair's per-culture tests, see `_paired.adjust`) and its minimum detectable effect (`_power`).
For KL (lower is better) a negative DiD means the target improved more than C. The rank of T among all
cultures of the reference table (by the model's 1-JSD similarity to each culture's survey answers, the
run's stored specificity row) is reported for both rows.

The verdict in words:
- specific: the DiD favours T significantly and T's own change is an improvement;
- generic: T improved significantly but not significantly more than C (the training moved answers in general);
- absent: T did not improve significantly (when the DiD significantly favours C, the effect points to C).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ._compare_rows import CompareRow, ComparisonData
from ._metrics import METRICS
from ._paired import KIND_BASE, KIND_REFERENCE, PairedStat, fmt_mde, significant
from ._power import minimum_detectable
from ._stats import paired_bootstrap, wilcoxon_p

SPECIFIC, GENERIC, ABSENT = "specific", "generic", "absent"
#: metrics the specificity is computed for (the refusal share is not an alignment measure)
SPECIFICITY_METRICS = tuple(m for m in METRICS if m != "safeguarded")


class SpecificityStat(BaseModel):
    kind: str = Field(description=f"'{KIND_BASE}' or '{KIND_REFERENCE}'")
    row: str = Field(description="run:model:style")
    reference: str = Field(description="run:model:style of the base model or of the reference arm's student")
    metric: str
    target: str
    comparison: str
    n_items: int = Field(description="questions all four rows share")
    target_diff: float = Field(description="mean over the shared questions of row minus reference on the target")
    comparison_diff: float = Field(description="the same on the comparison culture")
    did: float = Field(description="target_diff - comparison_diff, the mean of the per-question DiD")
    ci_low: float
    ci_high: float
    p: float | None = Field(None, description="Wilcoxon signed-rank of the per-question DiD, two-sided")
    p_holm: float | None = None
    sd: float | None = None
    mde: float | None = Field(None, description="minimum detectable DiD: paired t, two-sided alpha 0.05, power 0.8")
    rank_reference: int | None = Field(None, description="target's rank among all cultures (1 = closest)")
    rank_row: int | None = Field(None, description="the same for the row")
    cultures: int | None = Field(None, description="cultures ranked")
    verdict: str = Field("", description="specific, generic or absent")
    reading: str = ""

    @property
    def rank_change(self) -> int | None:
        """Row rank minus reference rank: negative = the target moved up among the cultures."""
        if self.rank_row is None or self.rank_reference is None:
            return None
        return self.rank_row - self.rank_reference


def did_values(row_t: dict[str, float], ref_t: dict[str, float], row_c: dict[str, float], ref_c: dict[str, float]):
    """Per shared question: (target change, comparison change, DiD), in question order."""
    shared = sorted(set(row_t) & set(ref_t) & set(row_c) & set(ref_c))
    out = []
    for q in shared:
        dt, dc = row_t[q] - ref_t[q], row_c[q] - ref_c[q]
        if dt == dt and dc == dc:
            out.append((dt, dc, dt - dc))
    return out


def specificity(comp: ComparisonData, paired: list[PairedStat], targets: dict[str, list[str]]) -> list[SpecificityStat]:
    """The DiD of every target-culture paired stat against base or the reference arm (`targets`: run -> cultures)."""
    by = {(r.ident, r.culture): r for r in comp.rows}
    out = []
    for s in paired:
        if s.kind not in (KIND_BASE, KIND_REFERENCE) or s.metric not in SPECIFICITY_METRICS:
            continue
        run = s.row.split(":", 1)[0]
        if s.culture not in targets.get(run, []):
            continue
        row_t, ref_t = by[(s.row, s.culture)], by[(s.baseline, s.culture)]
        for c in comp.cultures:
            row_c, ref_c = by.get((s.row, c)), by.get((s.baseline, c))
            if c in targets.get(run, []) or row_c is None or ref_c is None:
                continue
            stat = _did(s, row_t, ref_t, row_c, ref_c, comp)
            if stat is not None:
                out.append(stat)
    return out


def _did(
    s: PairedStat, row_t: CompareRow, ref_t: CompareRow, row_c: CompareRow, ref_c: CompareRow, comp: ComparisonData
):
    m = s.metric
    vals = did_values(*(r.per_item.get(m, {}) for r in (row_t, ref_t, row_c, ref_c)))
    if not vals:
        return None
    did = [v[2] for v in vals]
    mean, lo, hi = paired_bootstrap(did, resamples=comp.resamples, seed=comp.seed)
    sd, mde = minimum_detectable(did)
    return SpecificityStat(
        kind=s.kind,
        row=s.row,
        reference=s.baseline,
        metric=m,
        target=s.culture,
        comparison=row_c.culture,
        n_items=len(vals),
        target_diff=sum(v[0] for v in vals) / len(vals),
        comparison_diff=sum(v[1] for v in vals) / len(vals),
        did=mean,
        ci_low=lo,
        ci_high=hi,
        p=wilcoxon_p(did),
        sd=None if sd != sd else sd,
        mde=mde,
        rank_reference=ref_t.rank,
        rank_row=row_t.rank,
        cultures=row_t.rank_of or ref_t.rank_of,
    )


def judge(stats: list[SpecificityStat], paired: list[PairedStat]) -> None:
    """Set each stat's verdict and reading (after Holm: both its own p and the target's paired p)."""
    tgt = {(p.kind, p.row, p.baseline, p.metric, p.culture): p for p in paired}
    for s in stats:
        t = tgt[(s.kind, s.row, s.reference, s.metric, s.target)]
        lower_better = METRICS.get(s.metric, ("", True))[1]
        improved = (t.diff < 0) == lower_better and t.diff != 0
        favours_target = (s.did < 0) == lower_better and s.did != 0
        did_sig = significant(s.p_holm, s.p)
        rank = ""
        if s.rank_change is not None:
            rank = f"; {s.target} rank {s.rank_reference} → {s.rank_row} of {s.cultures}"
        if did_sig and favours_target and improved:
            s.verdict = SPECIFIC
            s.reading = f"specific to {s.target}: it moved {abs(s.did):.3g} more than {s.comparison}{rank}"
        elif improved and significant(t.p_holm, t.p):
            s.verdict = GENERIC
            if did_sig:
                s.reading = f"generic: {s.target} improved, but {s.comparison} moved significantly more{rank}"
            else:
                s.reading = (
                    f"generic: {s.target} improved, but not significantly more than {s.comparison} "
                    f"(detectable DiD: {fmt_mde(s.mde)}){rank}"
                )
        else:
            s.verdict = ABSENT
            if significant(t.p_holm, t.p):
                s.reading = f"absent: {s.target} got significantly worse"
            else:
                s.reading = f"absent: no significant change of {s.target}; detectable: {fmt_mde(t.mde)}"
            if did_sig and not favours_target:
                s.reading += f"; the effect points toward {s.comparison}"
            s.reading += rank
