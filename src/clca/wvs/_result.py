"""Evaluation results as tables: per culture/style metrics with intervals, specificity, base-vs-adapted shifts."""

from __future__ import annotations

import io
import math
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from ..countries import resolve_country
from ..errors import ConfigError
from ..records import (
    METRIC,
    SPECIFICITY,
    SURVEY_ANSWER,
    key_head,
    key_prefix,
    metric_key,
    metric_key_culture,
    specificity_key,
    split_answer_key,
    split_metric_key,
)
from ..store import RunStore

# metric -> (column title, lower is better): the one list of the WVS metrics and their directions
METRICS: dict[str, tuple[str, bool]] = {
    "kl": ("KL(model||survey) ↓", True),
    "jsd": ("JS distance ↓", True),
    "similarity": ("1-JSD ↑", False),
    "w1": ("W1/(K-1) ↓", True),
    "majority": ("majority match ↑", False),
    "accuracy": ("indiv. accuracy ↑", False),
    "safeguarded": ("safeguarded", True),
}


class MetricRow(BaseModel):
    model: str
    style: str
    culture: str
    variant: str
    theme: str
    metric: str
    mean: float
    lo: float
    hi: float
    n: int = Field(description="questions (or variants, for the 'spread' rows)")


class EvalResult(BaseModel):
    model: str
    cultures: list[str]
    compare: list[str] = Field(default_factory=list)
    rows: list[MetricRow] = Field(default_factory=list)
    specificity: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="style -> prompted culture -> survey culture -> mean 1-JSD"
    )
    summary: str = ""
    warnings: list[str] = Field(default_factory=list, description="lines for stderr (items left out of a selection)")

    def value(self, culture: str, style: str, metric: str, variant: str = "base", theme: str = "all") -> MetricRow:
        for r in self.rows:
            if (r.culture, r.style, r.metric, r.variant, r.theme) == (culture, style, metric, variant, theme):
                return r
        raise KeyError((culture, style, metric, variant, theme))


def _fmt(r: MetricRow) -> str:
    if math.isnan(r.mean):
        return "-"
    if r.lo == r.hi:
        return f"{r.mean:.3f}"
    return f"{r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]"


def _render(table: Table) -> str:
    buf = io.StringIO()
    Console(file=buf, width=220, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


def format_table(result: EvalResult, *, theme: str = "all", variant: str | None = None) -> str:
    """Metrics per culture and prompt style (mean [95% bootstrap interval over questions]), then specificity."""
    rows = [r for r in result.rows if r.theme == theme and (variant is None or r.variant == variant)]
    metrics = [m for m in METRICS if any(r.metric == m for r in rows)]
    t = Table(title=f"WVS evaluation of {result.model} (theme: {theme})")
    for col in ("culture", "style", "variant", "items"):
        t.add_column(col)
    for m in metrics:
        t.add_column(METRICS[m][0], justify="right")
    groups: dict[tuple[str, str, str], dict[str, MetricRow]] = {}
    for r in rows:
        groups.setdefault((r.culture, r.style, r.variant), {})[r.metric] = r
    for (c, s, v), ms in groups.items():
        n = next(iter(ms.values())).n
        t.add_row(c, s, v, str(n), *[_fmt(ms[m]) if m in ms else "" for m in metrics])
    out = _render(t)
    if result.specificity:
        st = Table(title="Specificity: similarity (mean 1-JSD) of the model's answers to each culture's survey")
        for col in ("prompted as", "style", "target rank", "top cultures"):
            st.add_column(col)
        for style, per in result.specificity.items():
            for c, sims in per.items():
                order = list(sims)
                rank = order.index(c) + 1 if c in sims else None
                top = ", ".join(f"{k} {sims[k]:.3f}" for k in order[:5])
                st.add_row(c, style, f"{rank}/{len(order)}" if rank else "-", top)
        out += _render(st)
    return out


class ModelShift(BaseModel):
    style: str
    target: str
    base_target: float
    adapted_target: float
    shift_target: float = Field(description="adapted - base similarity to the target culture (> 0: closer)")
    base_reference: float | None
    adapted_reference: float | None
    shift_reference: float | None = Field(description="the same towards the reference culture (default USA)")
    base_rank: int | None
    adapted_rank: int | None
    kl_base: float | None
    kl_adapted: float | None


def compare_models(
    store: RunStore, base_alias: str, adapted_alias: str, target: str, *, reference: str = "United States",
    styles: list[str] | None = None,
) -> list[ModelShift]:  # fmt: skip
    """Shift of the adapted model towards the target culture and towards the reference culture (default: US),
    from the metrics both evaluations stored in the run."""
    tgt = resolve_country(target)
    ref = resolve_country(reference)
    _check_pair(store, base_alias, adapted_alias, tgt)
    out: list[ModelShift] = []
    found_styles = styles or sorted(
        {
            k.style
            for r in store.iter(METRIC, prefix=key_prefix(base_alias))
            if (k := split_metric_key(r.key)) is not None and k.metric == SPECIFICITY
        }
    )
    for style in found_styles:
        b = store.get(METRIC, specificity_key(base_alias, style, tgt))
        a = store.get(METRIC, specificity_key(adapted_alias, style, tgt))
        if b is None or a is None:
            missing = base_alias if b is None else adapted_alias
            raise ConfigError(
                f"no {style!r} evaluation of {missing} for {tgt} in {store.run_dir}; run `clca eval` first"
            )
        bs, as_ = b.data["similarity"], a.data["similarity"]
        kb = store.get(METRIC, metric_key(base_alias, style, tgt, "base", "kl"))
        ka = store.get(METRIC, metric_key(adapted_alias, style, tgt, "base", "kl"))

        def rank(sims: dict[str, float]) -> int | None:
            order = sorted(sims, key=lambda k: -sims[k])
            return order.index(tgt) + 1 if tgt in order else None

        out.append(
            ModelShift(
                style=style,
                target=tgt,
                base_target=bs[tgt],
                adapted_target=as_[tgt],
                shift_target=as_[tgt] - bs[tgt],
                base_reference=bs.get(ref),
                adapted_reference=as_.get(ref),
                shift_reference=(as_[ref] - bs[ref]) if ref in bs and ref in as_ else None,
                base_rank=rank(bs),
                adapted_rank=rank(as_),
                kl_base=kb.data["mean"] if kb else None,
                kl_adapted=ka.data["mean"] if ka else None,
            )  # fmt: skip
        )
    return out


def _check_pair(store: RunStore, base: str, adapted: str, target: str) -> None:
    """Refuse a comparison that would print nothing or compare unlike setups: an alias the run has no
    evaluation of, a target culture neither evaluated, or different answer modes / persona counts /
    items for the target (as `clca compare` refuses them)."""
    aliases = sorted({key_head(r.key) for r in store.iter(METRIC)})
    have = ", ".join(aliases) or "none (run `clca eval` first)"
    for role, alias in (("--base", base), ("--adapted", adapted)):
        if alias not in aliases:
            raise ConfigError(f"{role} {alias!r}: no evaluation of that alias in {store.run_dir}; aliases: {have}")
    if base == adapted:
        raise ConfigError(f"--base and --adapted are the same alias {base!r}; aliases in {store.run_dir}: {have}")
    setups = {alias: _setup(store, alias, target) for alias in (base, adapted)}
    if not setups[base]["items"] and not setups[adapted]["items"]:
        cultures = sorted({c for r in store.iter(METRIC, prefix=key_prefix(base)) if (c := metric_key_culture(r.key))})
        raise ConfigError(
            f"--culture {target}: not evaluated for {base!r} or {adapted!r} in {store.run_dir}; "
            f"cultures of {base!r}: {', '.join(cultures) or 'none'}"
        )
    sb, sa = setups[base], setups[adapted]
    common = sorted(set(sb["personas"]) & set(sa["personas"]))  # the adapted model may be asked in fewer styles
    for key in ("mode", "personas", "items"):
        a, b = sorted(sb[key]), sorted(sa[key])
        if key == "personas":
            a = [f"{st}: {len(sb[key][st])} personas" for st in common]
            b = [f"{st}: {len(sa[key][st])} personas" for st in common]
        if a and b and a != b:
            shown = (f"{len(a)} items", f"{len(b)} items") if key == "items" else ("; ".join(a), "; ".join(b))
            raise ConfigError(
                f"{base!r} and {adapted!r} were evaluated with different {key} for {target} ({shown[0]} vs "
                f"{shown[1]}); re-evaluate one with the other's setup (as `clca compare` requires)"
            )


def _setup(store: RunStore, alias: str, target: str) -> dict[str, Any]:
    """What the stored answers of alias for target show: answer modes, persona counts per style, items (what
    was asked: failed answers count too, so a failure is not read as a different setup)."""
    modes: set[str] = set()
    personas: dict[str, set[str]] = {}
    items: set[str] = set()
    for rec in store.iter(SURVEY_ANSWER, prefix=key_prefix(alias), status=None):
        parts = split_answer_key(rec.key)
        if parts is None or parts[2] != target:
            continue
        _alias, style, _country, persona, item = parts
        if isinstance(rec.data, dict) and rec.status == "ok":
            modes.add(str(rec.data.get("mode")))
        personas.setdefault(style, set()).add(persona)
        items.add(item)
    return {"mode": modes, "personas": personas, "items": items}


def format_shifts(shifts: list[ModelShift], base: str, adapted: str) -> str:
    t = Table(title=f"{adapted} vs {base}: similarity (1-JSD) to target and reference culture")
    for col in ("style", "target", "base", "adapted", "shift→target", "shift→reference", "rank base→adapted",
                "KL base→adapted"):  # fmt: skip
        t.add_column(col)
    for s in shifts:
        sr = "-" if s.shift_reference is None else f"{s.shift_reference:+.4f}"
        kl = "-" if s.kl_base is None or s.kl_adapted is None else f"{s.kl_base:.3f}→{s.kl_adapted:.3f}"
        t.add_row(s.style, s.target, f"{s.base_target:.4f}", f"{s.adapted_target:.4f}", f"{s.shift_target:+.4f}",
                  sr, f"{s.base_rank}→{s.adapted_rank}", kl)  # fmt: skip
    return _render(t)
