"""WVS metrics for the report, read from the rows `clca.wvs.evaluate` stores.

Stored by clca.wvs (kind "metric"):
  "<alias>/<style>/<culture>/<variant>/<metric>"  {"mean", "lo", "hi", "per_item": {item: value}}
  "<alias>/<style>/<culture>/specificity"         {"similarity": {survey culture: mean 1-JSD}, "model": ...}
The report shows variant "base" (the questionnaire as written; other variants are robustness checks),
marks one model alias as the base model and every other alias as adapted, and derives per-question
shifts (adapted minus base) from the stored per-item values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import ClcaError
from ..records import SPECIFICITY, key_head, split_metric_key
from ..store import Record, RunStore
from ..wvs import METRICS as WVS_METRICS
from ..wvs import ModelShift, bootstrap_ci, compare_models

#: metric name -> the report's column title; the order of the report's columns
TITLES = {
    "kl": "KL",
    "jsd": "JSD",
    "similarity": "1-JSD",
    "w1": "Wasserstein",
    "accuracy": "Accuracy",
    "majority": "Majority match",
    "safeguarded": "Safeguarded",
}
#: metric name -> (column title, lower is better); the direction is the WVS stage's (clca.wvs METRICS)
METRICS: dict[str, tuple[str, bool]] = {m: (title, WVS_METRICS[m][1]) for m, title in TITLES.items()}
SHIFT_METRIC = "jsd"
REFERENCE_CULTURE = "USA"
MAX_SIMILARITY_COLUMNS = 16
Role = Literal["base", "adapted", "model"]


class Estimate(BaseModel):
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = Field(None, description="questions the value averages over")


class ModelScores(BaseModel):
    """One model alias and prompt style evaluated against one culture's survey answers."""

    model: str
    style: str
    culture: str = Field(description="the culture whose personas and survey answers were used")
    role: Role = "model"
    values: dict[str, Estimate] = Field(default_factory=dict)
    per_item: dict[str, dict[str, float]] = Field(default_factory=dict, exclude=True, description="metric -> item")

    @property
    def label(self) -> str:
        return f"{self.model} ({self.style})"


class QuestionShift(BaseModel):
    culture: str
    style: str
    question: str
    metric: str
    base: str
    adapted: str
    delta: float = Field(description="adapted minus base (for JSD: negative = closer to the survey)")


class SimilarityCell(BaseModel):
    model: str = Field(description="'<alias> (<style>)'")
    target: str = Field(description="the culture the model was prompted as (its personas)")
    culture: str = Field(description="the culture whose survey answers it is compared with")
    similarity: float


class SimilarityRank(BaseModel):
    model: str
    target: str
    target_similarity: float
    rank: int = Field(description="1 = the target is the most similar of all survey cultures")
    cultures: int
    best_other: str | None
    best_other_similarity: float | None
    reference_similarity: float | None = Field(None, description=f"similarity to {REFERENCE_CULTURE}")


class TargetShift(BaseModel):
    """clca.wvs.compare_models for one adapted model: towards the target culture, and towards the reference."""

    base: str
    adapted: str
    shift: ModelShift


class AnswerShares(BaseModel):
    """The model's answer distribution per item (codes in scale order, then the safeguarded share), as
    `clca.wvs` stored it with the specificity row of one alias, style and prompted culture."""

    model: str
    style: str
    culture: str
    items: dict[str, list[float]] = Field(default_factory=dict)


class WvsSummary(BaseModel):
    base_model: str | None = None
    scores: list[ModelScores] = Field(default_factory=list)
    shifts: list[QuestionShift] = Field(default_factory=list)
    similarity: list[SimilarityCell] = Field(default_factory=list)
    ranks: list[SimilarityRank] = Field(default_factory=list)
    target_shifts: list[TargetShift] = Field(default_factory=list)
    answers_by_model: dict[str, int] = Field(default_factory=dict)
    safeguarded_answers: int = 0
    answer_shares: list[AnswerShares] = Field(default_factory=list, exclude=True, description="for clca compare")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _estimate(d: dict[str, Any]) -> Estimate | None:
    mean = _num(d.get("mean"))
    if mean is None:
        return None
    per = d.get("per_item") if isinstance(d.get("per_item"), dict) else {}
    vals = [x for x in (_num(v) for v in per.values()) if x is not None]
    lo, hi = _num(d.get("lo")), _num(d.get("hi"))
    if (lo is None or hi is None) and len(vals) > 1:
        _, lo, hi = bootstrap_ci(vals)
    return Estimate(value=mean, ci_low=lo, ci_high=hi, n=len(vals) or None)


def base_alias(aliases: set[str], config: dict[str, Any] | None, explicit: str | None = None) -> str | None:
    """The alias of the unadapted model: given, or the config's (report|wvs|eval).base_model, or 'base'."""
    if explicit:
        return explicit
    for section in ("report", "wvs", "eval"):
        sec = (config or {}).get(section)
        if isinstance(sec, dict) and isinstance(sec.get("base_model"), str):
            return sec["base_model"]
    return "base" if "base" in aliases else None


def read_wvs(
    metrics: list[Record], answers: list[Record], config: dict[str, Any] | None, base: str | None = None
) -> WvsSummary:
    """Metric tables, shifts and similarity grid from the stored metric rows; answer counts per model."""
    out = WvsSummary()
    by_model: dict[str, int] = defaultdict(int)
    for r in answers:
        if r.status == "ok":
            by_model[key_head(r.key)] += 1
            if isinstance(r.data, dict) and (_num(r.data.get("safeguarded")) or 0.0) >= 0.5:
                out.safeguarded_answers += 1
    out.answers_by_model = dict(sorted(by_model.items()))

    scores: dict[tuple[str, str, str], ModelScores] = {}
    variants: dict[tuple[str, str, str], str] = {}
    specificity: list[tuple[str, str, str, dict[str, float]]] = []
    for r in metrics:
        if r.status != "ok" or not isinstance(r.data, dict):
            continue
        parts = split_metric_key(r.key)
        if parts is None:
            continue
        alias, style, culture, variant, metric = parts
        if metric == SPECIFICITY:
            if isinstance(r.data.get("similarity"), dict):
                sims = {str(k): v for k, x in r.data["similarity"].items() if (v := _num(x)) is not None}
                specificity.append((alias, style, culture, sims))
                model = r.data.get("model")
                if isinstance(model, dict) and model:
                    items = {str(i): [float(x) for x in d] for i, d in model.items() if isinstance(d, list)}
                    out.answer_shares.append(AnswerShares(model=alias, style=style, culture=culture, items=items))
            continue
        if variant is None:
            continue
        ident = (alias, style, culture)
        chosen = variants.setdefault(ident, variant)
        if variant != chosen:
            if variant != "base":
                continue
            variants[ident] = variant  # "base" wins over a robustness variant seen first
            scores.pop(ident, None)
        est = _estimate(r.data)
        if est is None:
            continue
        row = scores.setdefault(ident, ModelScores(model=alias, style=style, culture=culture))
        row.values[metric] = est
        per = r.data.get("per_item")
        if isinstance(per, dict):
            row.per_item[metric] = {str(k): v for k, x in per.items() if (v := _num(x)) is not None}

    out.base_model = base_alias({k[0] for k in scores} | {s[0] for s in specificity}, config, base)
    for row in scores.values():
        if out.base_model is not None:
            row.role = "base" if row.model == out.base_model else "adapted"
    out.scores = sorted(scores.values(), key=lambda m: (m.culture, m.role != "base", m.model, m.style))
    out.shifts = _shifts(out.scores)
    out.similarity, out.ranks = _similarity(specificity)
    return out


def _shifts(rows: list[ModelScores], metric: str = SHIFT_METRIC) -> list[QuestionShift]:
    out = []
    groups: dict[tuple[str, str], list[ModelScores]] = defaultdict(list)
    for r in rows:
        groups[(r.culture, r.style)].append(r)
    for (culture, style), group in sorted(groups.items()):
        for b in (r for r in group if r.role == "base"):
            for a in (r for r in group if r.role == "adapted"):
                bq, aq = b.per_item.get(metric, {}), a.per_item.get(metric, {})
                for q in sorted(set(bq) & set(aq), key=_qkey):
                    out.append(
                        QuestionShift(
                            culture=culture,
                            style=style,
                            question=q,
                            metric=metric,
                            base=b.label,
                            adapted=a.label,
                            delta=aq[q] - bq[q],
                        )
                    )
    return out


def _qkey(q: str) -> tuple[str, int, str]:
    head = q.rstrip("0123456789")
    tail = q[len(head) :]
    return (head, int(tail) if tail else -1, q)


Spec = tuple[str, str, str, dict[str, float]]  # alias, style, prompted culture, similarity per survey culture


def _similarity(spec: list[Spec]) -> tuple[list[SimilarityCell], list[SimilarityRank]]:
    """Heatmap cells (columns: prompted cultures, the reference culture, each row's closest ones) and ranks."""
    prompted = sorted({t for _, _, t, _ in spec})
    cols: list[str] = list(prompted)
    if any(REFERENCE_CULTURE in s for *_, s in spec) and REFERENCE_CULTURE not in cols:
        cols.append(REFERENCE_CULTURE)
    for *_, sims in spec:
        for c in sorted(sims, key=lambda k: -sims[k])[:3]:
            if c not in cols and len(cols) < MAX_SIMILARITY_COLUMNS:
                cols.append(c)
    cells, ranks = [], []
    for alias, style, target, sims in sorted(spec, key=lambda s: (s[2], s[0], s[1])):
        label = f"{alias} ({style}) as {target}"
        cells += [SimilarityCell(model=label, target=target, culture=c, similarity=sims[c]) for c in cols if c in sims]
        if target in sims:
            order = sorted(sims, key=lambda k: -sims[k])
            others = [c for c in order if c != target]
            ranks.append(
                SimilarityRank(
                    model=f"{alias} ({style})",
                    target=target,
                    target_similarity=sims[target],
                    rank=order.index(target) + 1,
                    cultures=len(order),
                    best_other=others[0] if others else None,
                    best_other_similarity=sims[others[0]] if others else None,
                    reference_similarity=sims.get(REFERENCE_CULTURE),
                )
            )
    return cells, ranks


def target_shifts(store: RunStore, wvs: WvsSummary, targets: set[str]) -> list[TargetShift]:
    """Adapted vs base similarity to each adaptation target and to the reference culture (clca.wvs.compare_models),
    for the prompt styles both models were evaluated with."""
    base = wvs.base_model
    if base is None:
        return []
    prompted = {r.target for r in wvs.ranks}
    chosen = sorted(prompted & targets) or sorted(prompted)
    styles_of: dict[str, set[str]] = defaultdict(set)
    for r in wvs.scores:
        styles_of[r.model].add(r.style)
    out = []
    for adapted in sorted(m for m in styles_of if m != base):
        styles = sorted(styles_of[adapted] & styles_of[base])
        for target in chosen:
            try:
                shifts = compare_models(store, base, adapted, target, reference=REFERENCE_CULTURE, styles=styles)
            except ClcaError:  # this pair was not evaluated for this culture: nothing to compare
                continue
            out += [TargetShift(base=base, adapted=adapted, shift=s) for s in shifts]
    return out
