"""`evaluate`: ask a model the survey as personas of each culture, store every answer, compute the metrics."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._bounds import seed_field, temperature_field
from ..countries import resolve_country
from ..errors import ClcaError, ConfigError
from ..failures import failure_reason
from ..llm import LLM
from ..records import (
    EVAL_SEEDS_META,
    METRIC,
    SURVEY_ANSWER,
    answer_key,
    key_prefix,
    metric_key,
    specificity_key,
)
from ..runner import run_items
from ..store import RunStore
from ._answer import DEFAULT_MAX_TOKENS, PERSONA_STYLES, Answer, ask
from ._iwmap import QUESTIONS as MAP_QUESTIONS
from ._iwplace import build_map, map_metrics
from ._metrics import bootstrap_ci, js_distance, kl_divergence, majority_match, wasserstein_ordinal
from ._opinionqa import load_opinion_survey
from ._personas import Persona, personas_from_marginals, personas_from_survey
from ._questionnaire import Item, Questionnaire, bundled_with_sets, load_questionnaire
from ._reference import Distribution, ReferenceTable, load_reference, survey_reference
from ._result import EvalResult, MetricRow
from ._survey import Survey, problem_note

SHARED_PERSONA = "all"  # persona id used by styles whose prompt has no persona details


class EvalConfig(BaseModel):
    """What to evaluate. Countries are names or ISO alpha-3 codes."""

    model_config = ConfigDict(extra="forbid")

    cultures: list[str] = Field(description="target cultures")
    compare: list[str] = Field(default_factory=list, description="other cultures evaluated the same way")
    styles: list[Literal["persona", "cultural", "anthropological", "none"]] = Field(default_factory=lambda: ["persona"])
    mode: Literal["logprobs", "generate"] = "logprobs"
    personas: int = Field(20, ge=1, le=100_000, description="personas per culture (paper: 1000)")
    samples: int = Field(20, ge=1, description="sampled answers per prompt in generate mode")
    shared_samples: int | None = Field(
        None,
        ge=1,
        description="generate mode, styles without persona details (cultural, none): sampled answers per item; "
        "default samples x personas, as many as a persona style gets per item in total",
    )
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, description="reply budget per sampled answer (generate mode)")
    temperature: float = temperature_field(1.0)
    epsilon: float = Field(1e-3, ge=0.0, le=0.1, allow_inf_nan=False, description="KL smoothing for zero survey shares")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples over questions")
    seed: int = seed_field()
    variants: list[str] = Field(default_factory=lambda: ["base"], description="base | perm<k> | para")
    items: list[str] | None = Field(
        None,
        description="item ids or sets: wvs44 (the 44 bundled items), iw10 (the cultural map's questions); "
        "default: all of the questionnaire",
    )
    survey: list[str] = Field(
        default_factory=list, description="WVS respondent files (.csv, .sav, .dta, .rds); default: bundled reference"
    )
    survey_labels: str | None = Field(
        None, description="value labels for a numeric CSV survey (a .sav/.dta of the same release, or JSON)"
    )
    persona_sampling: Literal["weighted", "uniform"] = Field(
        "weighted", description="respondents drawn proportionally to W_WEIGHT (weighted) or uniformly"
    )
    reference: str | None = Field(None, description="reference table JSON (e.g. from `clca wvs aggregate`)")
    opinions: str | None = Field(
        None, description="GlobalOpinionQA file: its questions and per-country shares replace the WVS survey"
    )
    opinion_unsure: Literal["keep", "drop"] = Field(
        "keep", description="GlobalOpinionQA 'Don't know'/'Refused' options: keep as in the data, or drop+renormalise"
    )
    questionnaire: str | None = Field(None, description="questionnaire file to use instead of the bundled one")
    strict: bool = Field(
        False,
        description="refuse a survey or GlobalOpinionQA file at its first bad line (default: load what is valid, "
        "report the rest by line)",
    )
    concurrency: int = Field(32, ge=1)
    progress: bool = True


def samples_per_prompt(cfg: EvalConfig, style: str, n_personas: int) -> int:
    """Sampled answers per prompt: a persona style asks each persona `samples` times; a style whose prompt is
    the same for every persona is asked once per item, so it gets as many samples as all personas together."""
    if style in PERSONA_STYLES:
        return cfg.samples
    return cfg.shared_samples if cfg.shared_samples is not None else cfg.samples * max(1, n_personas)


class _Unit(BaseModel):
    key: str
    style: str
    persona: Persona
    item: Item
    variant: str
    samples: int


def _check(cfg: EvalConfig) -> None:
    for v in cfg.variants:
        if not (v in ("base", "para") or (v.startswith("perm") and v[4:].isdigit())):
            raise ConfigError(f"unknown variant {v!r}; use base, para or perm<k> (e.g. perm1)")


def _inputs(cfg: EvalConfig) -> tuple[Questionnaire, ReferenceTable, Survey | None, str]:
    """Questionnaire, reference shares, respondents (or None) and a note for the output."""
    if cfg.opinions:
        clash = [k for k in ("survey", "reference", "questionnaire") if getattr(cfg, k)]
        if clash:
            raise ConfigError(f"eval: opinions (GlobalOpinionQA) cannot be combined with {', '.join(clash)}")
        ops = load_opinion_survey(cfg.opinions, cfg.opinion_unsure, strict=cfg.strict)
        return ops.questionnaire.select(cfg.items), ops.reference, None, ops.summary()
    if cfg.questionnaire:
        q = load_questionnaire(cfg.questionnaire).select(cfg.items)
    else:
        full, ids = bundled_with_sets(cfg.items)
        q = full.select(ids)
    survey = None
    note = ""
    ref = load_reference(cfg.reference)
    if cfg.survey:
        wanted: set[str] = set()
        for c in cfg.cultures + cfg.compare:
            try:
                wanted.add(resolve_country(c))
            except ConfigError:
                pass  # reported below with the countries available
        # respondents kept for the evaluated cultures only; shares of every country in the files
        survey, from_files = survey_reference(cfg.survey, q, cfg.survey_labels, keep=wanted, strict=cfg.strict)
        ref.countries.update(from_files.countries)  # the user's file replaces the reference for its countries
        if survey.unlabelled_regions:
            note = (
                f"survey: {survey.unlabelled_regions} respondents' region codes have no value label "
                "(region left out of their personas; give survey_labels / --labels)\n"
            )
        if survey.problem_count:
            note += f"survey: {problem_note(survey.problem_count, survey.problems)}\n"
    return q, ref, survey, note


@dataclass
class EvalPlan:
    """Everything an evaluation asks, decided before any model call: the questionnaire, the reference,
    the cultures, each culture's personas and the units (one prompt each). `clca eval` runs it; the
    harness tasks (`clca harness export`) write the same units as documents."""

    questionnaire: Questionnaire
    reference: ReferenceTable
    cultures: list[str]
    others: list[str]
    personas: dict[str, list[Persona]]
    units: list[_Unit]
    note: str = ""  # what the inputs want the user to know (skipped entries, unlabelled regions)
    dropped: list[str] = field(default_factory=list)  # warning lines: items asked for that a culture lacks


def plan(cfg: EvalConfig, model_alias: str) -> EvalPlan:
    """The evaluation's prompts, personas and reference (no model involved)."""
    _check(cfg)
    if "/" in model_alias:
        raise ConfigError(f"model alias {model_alias!r} must not contain '/'")
    q, ref, survey, note = _inputs(cfg)
    known = set(ref.countries)
    cultures = [resolve_country(c, known) for c in cfg.cultures]
    others = [resolve_country(c, known) for c in cfg.compare if resolve_country(c, known) not in cultures]
    for c in cultures + others:
        if c not in ref.countries or not ref.countries[c].items:
            have = ", ".join(sorted(ref.countries)) or "none"
            hint = "" if cfg.opinions else " (use --survey FILE or --reference FILE for others)"
            raise ConfigError(f"no survey answers for {c}; available: {have}{hint}")
    chosen, dropped = _items_per_culture(cfg, q, ref, cultures + others)
    personas: dict[str, list[Persona]] = {}
    units: list[_Unit] = []
    for c in cultures + others:
        personas[c] = eval_personas(cfg, ref, survey, c)
        items = chosen[c]
        for style in cfg.styles:
            who = personas[c] if style in PERSONA_STYLES else [Persona(id=SHARED_PERSONA, country=c)]
            for p in who:  # persona by persona: the shared system prompt stays in the prefix cache
                for v in cfg.variants:
                    for it in items:
                        units.append(_Unit(key=answer_key(model_alias, style, c, p.id, it.id, v), style=style,
                                           persona=p, item=it, variant=v,
                                           samples=samples_per_prompt(cfg, style, len(personas[c]))))  # fmt: skip
    return EvalPlan(
        questionnaire=q, reference=ref, cultures=cultures, others=others, personas=personas, units=units, note=note,
        dropped=dropped,
    )  # fmt: skip


def _items_per_culture(
    cfg: EvalConfig, q: Questionnaire, ref: ReferenceTable, countries: list[str]
) -> tuple[dict[str, list[Item]], list[str]]:
    """Each culture's items (the questionnaire's items its reference has answers for) and one warning line per
    culture that lacks some of the items asked for by name; a culture left with none is a ConfigError naming
    what was asked and what exists (never an empty table with exit 0)."""
    chosen: dict[str, list[Item]] = {}
    dropped: list[str] = []
    source = "GlobalOpinionQA file" if cfg.opinions else "reference"
    asked = [i.id for i in q] if cfg.items else None  # q holds the items asked, item sets ('iw10') expanded
    for c in countries:
        have = ref.countries[c].items
        chosen[c] = [i for i in q if i.id in have]
        if not chosen[c]:
            what = ", ".join(_short(asked)) if asked else f"all {len(q.items)} items of the questionnaire"
            exists = ", ".join(_short(sorted(have, key=_item_order))) or "none"
            raise ConfigError(f"no survey answers for {c} on the items asked ({what}); the {source} has {c}: {exists}")
        if asked:
            missing = [i for i in asked if i not in have]
            if missing:
                dropped.append(
                    f"warning: {c}: {len(missing)} of the {len(asked)} items asked have no survey answers in "
                    f"the {source} and are left out: {', '.join(_short(missing))}"
                )
    return chosen, dropped


def _item_order(item_id: str) -> tuple[str, int, str]:
    m = re.match(r"([^0-9]*)([0-9]+)(.*)", item_id)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (item_id, 0, "")


def _short(ids: list[str], n: int = 12) -> list[str]:
    """At most n ids, then how many more (an error line stays one readable line)."""
    return ids if len(ids) <= n else [*ids[:n], f"... ({len(ids) - n} more)"]


async def evaluate(store: RunStore, llm: LLM, model_alias: str, cfg: EvalConfig) -> EvalResult:
    """Answer the survey for every culture/style/persona/item/variant (resumable), then compute metrics."""
    pl = plan(cfg, model_alias)
    q, ref, cultures, others, personas, units, note = (
        pl.questionnaire, pl.reference, pl.cultures, pl.others, pl.personas, pl.units, pl.note,
    )  # fmt: skip
    for rec in store.iter(SURVEY_ANSWER, prefix=key_prefix(model_alias)):
        if rec.data.get("mode") != cfg.mode:
            raise ConfigError(
                f"{store.run_dir} holds {rec.data.get('mode')}-mode answers of {model_alias!r}; "
                f"use another --alias or run directory for {cfg.mode} mode"
            )
        break

    async def one(u: _Unit) -> bool:
        try:
            a = await ask(
                llm, style=u.style, persona=u.persona, item=u.item, variant=u.variant, mode=cfg.mode,
                seed=cfg.seed, samples=u.samples, temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
            )  # fmt: skip
        except (ClcaError, ValueError) as e:
            store.fail(SURVEY_ANSWER, u.key, failure_reason(e))
            return False
        store.put(SURVEY_ANSWER, u.key, a.model_dump())
        return True

    seeds = store.get_meta(EVAL_SEEDS_META)  # shown by `clca compare` for a run without a run config
    store.set_meta(EVAL_SEEDS_META, {**(seeds if isinstance(seeds, dict) else {}), model_alias: cfg.seed})
    summary = await run_items(
        units, one, is_done=lambda u: store.done(SURVEY_ANSWER, u.key), concurrency=cfg.concurrency,
        desc="survey answers", progress=cfg.progress,
    )  # fmt: skip
    result = compute_metrics(store, model_alias, cfg, q, ref, personas, cultures, others)
    result.summary = summary.line("survey answers") + ("\n" + note.rstrip("\n") if note else "")
    result.warnings = pl.dropped
    if not cfg.opinions and set(MAP_QUESTIONS) <= set(q.ids):  # the cultural map (docs/cultural-map.md)
        cmap = build_map(ref, cfg.survey, q, cfg.survey_labels)
        rows, lines = map_metrics(
            store, model_alias, cfg.styles, cultures + others, cmap, resamples=cfg.bootstrap, seed=cfg.seed
        )
        result.rows += rows
        result.summary += "\n" + "\n".join([f"cultural map: {cmap.projection.describe()}", *lines])
    return result


def _model_dist(answers: list[Answer]) -> list[float]:
    return list(np.mean([a.with_safeguarded() for a in answers], axis=0))


def compute_metrics(
    store: RunStore,
    alias: str,
    cfg: EvalConfig,
    q: Questionnaire,
    ref: ReferenceTable,
    personas: dict[str, list[Persona]],
    cultures: list[str],
    others: list[str],
) -> EvalResult:
    """Metrics from the stored answers (so a resumed or re-run evaluation gives the same numbers)."""
    rows: list[MetricRow] = []
    specificity: dict[str, dict[str, dict[str, float]]] = {}
    for c in cultures + others:
        cref = ref.countries[c]
        for style in cfg.styles:
            variant_means: dict[str, dict[str, float]] = {}
            for v in cfg.variants:
                prefix = key_prefix(alias, style, c)
                by_item: dict[str, list[Answer]] = defaultdict(list)
                by_persona_item: dict[tuple[str, str], Answer] = {}
                wanted = {p.id for p in personas[c]} if style in PERSONA_STYLES else {SHARED_PERSONA}
                for rec in store.iter(SURVEY_ANSWER, prefix=prefix):
                    a = Answer.model_validate(rec.data)
                    if a.variant != v or a.item not in cref.items or a.persona not in wanted:
                        continue
                    by_item[a.item].append(a)
                    by_persona_item[(a.persona, a.item)] = a
                if not by_item:
                    continue
                per_item = _item_metrics(q, cref.items, by_item, cfg.epsilon)
                acc = _accuracy(personas[c], by_persona_item, style)
                if acc:
                    per_item["accuracy"] = acc
                means: dict[str, float] = {}
                for metric, vals in per_item.items():
                    mean, lo, hi = bootstrap_ci(list(vals.values()), resamples=cfg.bootstrap, seed=cfg.seed)
                    means[metric] = mean
                    rows.append(MetricRow(model=alias, style=style, culture=c, variant=v, theme="all",
                                          metric=metric, mean=mean, lo=lo, hi=hi, n=len(vals)))  # fmt: skip
                    for theme, tvals in _by_theme(q, vals).items():
                        tm, tl, th = bootstrap_ci(tvals, resamples=cfg.bootstrap, seed=cfg.seed)
                        rows.append(MetricRow(model=alias, style=style, culture=c, variant=v, theme=theme,
                                              metric=metric, mean=tm, lo=tl, hi=th, n=len(tvals)))  # fmt: skip
                    store.put(METRIC, metric_key(alias, style, c, v, metric),
                              {"mean": mean, "lo": lo, "hi": hi, "per_item": vals})  # fmt: skip
                variant_means[v] = means
                if v == cfg.variants[0]:
                    model = {i: _model_dist(ans) for i, ans in by_item.items()}
                    spec = _specificity(model, ref)
                    specificity.setdefault(style, {})[c] = spec
                    store.put(METRIC, specificity_key(alias, style, c), {"similarity": spec, "model": model})
            if len(variant_means) > 1:
                for metric in next(iter(variant_means.values())):
                    ms = [m[metric] for m in variant_means.values() if metric in m]
                    rows.append(MetricRow(model=alias, style=style, culture=c, variant="spread", theme="all",
                                          metric=metric, mean=float(np.std(ms)), lo=min(ms), hi=max(ms),
                                          n=len(ms)))  # fmt: skip
    return EvalResult(model=alias, cultures=cultures, compare=others, rows=rows, specificity=specificity)


def _item_metrics(
    q: Questionnaire, survey: dict[str, Distribution], by_item: dict[str, list[Answer]], eps: float
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for iid, answers in sorted(by_item.items()):
        for metric, value in item_metric_values(_model_dist(answers), survey[iid].shares, q.get(iid).kind, eps).items():
            out[metric][iid] = value
    return dict(out)


def item_metric_values(p: list[float], s: list[float], kind: str, eps: float) -> dict[str, float]:
    """The culture-level metrics of one item: the model's distribution `p` (mean over personas, with a
    trailing safeguarded share) against the survey's shares `s`."""
    jsd = js_distance(p, s)
    out = {"kl": kl_divergence(p, s, eps), "jsd": jsd, "similarity": 1.0 - jsd}
    if kind == "ordinal":
        out["w1"] = wasserstein_ordinal(p, s)
    out["majority"] = majority_match(p, s)
    out["safeguarded"] = float(p[-1])
    return out


def eval_personas(cfg: EvalConfig, ref: ReferenceTable, survey: Survey | None, country: str) -> list[Persona]:
    """The personas `evaluate` asks for one culture: survey respondents when the survey has the culture,
    else synthetic personas from the reference marginals (seeded by cfg.seed)."""
    if survey is not None and survey.of(country):
        return personas_from_survey(survey, country, cfg.personas, cfg.seed, cfg.persona_sampling)
    return personas_from_marginals(ref.countries[country].marginals, country, cfg.personas, cfg.seed)


def eval_inputs(cfg: EvalConfig) -> tuple[Questionnaire, ReferenceTable, Survey | None]:
    """The questionnaire (items selected), reference table and survey an evaluation with cfg uses."""
    q, ref, survey, _note = _inputs(cfg)
    return q, ref, survey


def persona_hits(
    personas: list[Persona], answers: dict[tuple[str, str], Answer], style: str
) -> dict[str, dict[str, float]]:
    """Per persona and item with a real answer: P(model answer == real answer); with logprobs the model's
    answer is its most likely option, with generate each sample counts (safeguarded = wrong)."""
    out: dict[str, dict[str, float]] = {}
    for p in personas:
        for iid, real in p.answers.items():
            pid = p.id if style in PERSONA_STYLES else SHARED_PERSONA
            a = answers.get((pid, iid))
            if a is None:
                continue
            if a.mode == "logprobs":
                hit = 1.0 if a.codes[int(np.argmax(a.probs))] == real else 0.0
            else:
                hit = a.probs[a.codes.index(real)]
            out.setdefault(p.id, {})[iid] = hit
    return out


def _accuracy(personas: list[Persona], answers: dict[tuple[str, str], Answer], style: str) -> dict[str, float]:
    """Per item: mean over personas with a real answer of `persona_hits`."""
    hits: dict[str, list[float]] = defaultdict(list)
    for per in persona_hits(personas, answers, style).values():
        for iid, hit in per.items():
            hits[iid].append(hit)
    return {i: float(np.mean(v)) for i, v in sorted(hits.items())}


def _by_theme(q: Questionnaire, vals: dict[str, float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for iid, v in vals.items():
        out[q.get(iid).theme].append(v)
    return dict(out)


def _specificity(model: dict[str, list[float]], ref: ReferenceTable, min_coverage: float = 0.75) -> dict[str, float]:
    """Mean 1 - JSD between the model's answers (prompted for one culture) and every culture's survey answers,
    over the items both have; cultures with fewer than `min_coverage` of the model's items are left out
    (means over very different item sets are not comparable)."""
    out: dict[str, float] = {}
    for country, cref in ref.countries.items():
        sims = [1.0 - js_distance(p, cref.items[i].shares) for i, p in model.items() if i in cref.items]
        if sims and len(sims) >= min_coverage * len(model):
            out[country] = float(np.mean(sims))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def rank_of(similarity: dict[str, float], country: str) -> int | None:
    """1 = the culture the model is most similar to."""
    order = sorted(similarity, key=lambda k: -similarity[k])
    return order.index(country) + 1 if country in similarity else None
