"""Control training sets from survey answers (the survey_* variants): rows in the evaluation's own chat format.

Each row is one (training persona, item, answer): the persona system prompt and the question exactly as
the evaluation asks them (`clca.wvs.build_messages`, style "persona", the questionnaire as written) and
the option number as the assistant turn, the continuation the evaluation scores. Training personas are
never evaluation personas: with a respondent file (`eval.survey`) they are the culture's other
respondents (their real answers); with the reference table they are personas drawn from the culture's
marginals under another seed (ids `t0000`...), answers drawn from the culture's reference shares, and
any whose prompt equals an evaluation persona's is left out.

    survey_direct    the target's answers to the evaluation items (the positive control)
    survey_transfer  the target's answers to questionnaire items that are NOT evaluation items
    survey_other     dataset.control_culture's answers to the evaluation items (the negative control)
    survey_shuffled  survey_direct's answers permuted across rows of items with the same number of options
                     (same answer marginals, no item-answer link)
    survey_uniform   survey_direct's prompts with a uniformly drawn option (the format-only control)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ._config import SURVEY_VARIANTS, DatasetConfig
from ._rows import Row

SURVEY_TASK = "survey"
EVAL_STYLE = "persona"  # the style whose prompts the rows copy (the adapted student is evaluated with it)


@dataclass
class _Source:
    """Training personas of one culture and a way to answer an item as each of them."""

    culture: str
    personas: list[Any]  # clca.wvs.Persona
    from_respondents: bool


def _eval_parts(ev: Any) -> tuple[Any, Any, Any, Any]:
    """(the full questionnaire, the evaluation's item ids in order, the reference table, the respondents)."""
    from ..wvs import default_questionnaire, eval_inputs, load_questionnaire

    q_eval, ref, survey = eval_inputs(ev)
    q_full = load_questionnaire(ev.questionnaire) if ev.questionnaire else default_questionnaire()
    return q_full, [i.id for i in q_eval], ref, survey


def _target(cfg: DatasetConfig, ev: Any, known: set[str]) -> str:
    from ..wvs import resolve_country

    spec = cfg.culture or (ev.cultures[0] if ev.cultures else None)
    if spec is None:
        raise DataError(f"dataset.variant {cfg.variant}: no target culture (set dataset.culture or cultures)")
    return resolve_country(spec, known)


def _training_personas(ev: Any, ref: Any, survey: Any, culture: str, n: int, seed: int) -> _Source:
    """Personas for training rows, disjoint from the evaluation's personas of `culture`."""
    from ..wvs import Persona, build_messages, eval_personas, personas_from_marginals

    evaluated = eval_personas(ev, ref, survey, culture)
    if survey is not None and survey.of(culture):
        used = {p.source for p in evaluated}
        rows = [r for r in survey.of(culture) if f"{Path(r.source).name}:{r.line}" not in used]
        rng = random.Random(f"survey-control|{seed}|{culture}")
        rng.shuffle(rows)
        if not rows:
            raise DataError(f"survey controls: every respondent of {culture} is an evaluation persona")
        personas = [
            Persona(
                id=f"t-{Path(r.source).stem.replace(' ', '_')}-{r.line}",
                country=culture,
                demographics=dict(r.demographics),
                answers=dict(r.answers),
                source=f"{Path(r.source).name}:{r.line}",
            )
            for r in rows
        ]
        return _Source(culture, personas, True)
    drawn = personas_from_marginals(ref.countries[culture].marginals, culture, n * 2, seed=-(seed + 1))
    # a persona with details whose prompt equals an evaluation persona's is not disjoint (without marginals
    # every persona is the country alone: then only the ids differ)
    seen = {_system(build_messages, p) for p in evaluated if p.details()}
    personas = []
    for k, p in enumerate(drawn):
        p = p.model_copy(update={"id": f"t{k:04d}"})
        if p.details() and _system(build_messages, p) in seen:
            continue
        personas.append(p)
        if len(personas) == n:
            break
    if not personas:
        raise DataError(f"survey controls: no training persona of {culture} differs from the evaluation personas")
    return _Source(culture, personas, False)


def _system(build_messages: Any, persona: Any) -> str:
    from ..wvs import Item

    probe = Item(id="probe", theme="", text="", options={1: "a"})
    return str(build_messages(EVAL_STYLE, persona, probe, "base", 0)[0]["content"])


def _answers(
    src: _Source, items: list[Any], ref: Any, n_rows: int, seed: int
) -> tuple[list[tuple[Any, Any, int]], dict[str, int]]:
    """n_rows (persona, item, code): items in turn (rows spread evenly over them), personas in turn."""
    rng = random.Random(f"survey-answers|{seed}|{src.culture}")
    out: list[tuple[Any, Any, int]] = []
    skipped: dict[str, int] = {}
    cursor = 0
    for k in range(n_rows):
        item = items[k % len(items)]
        if src.from_respondents:
            for step in range(len(src.personas)):
                p = src.personas[(cursor + step) % len(src.personas)]
                code = p.answers.get(item.id)
                if code is not None and code in item.options:
                    out.append((p, item, code))
                    cursor += step + 1
                    break
            continue
        dist = ref.countries[src.culture].items[item.id]
        p = src.personas[k % len(src.personas)]
        code = rng.choices(dist.codes, weights=dist.shares, k=1)[0]
        if code not in item.options:
            skipped["reference code not in the questionnaire"] = (
                skipped.get("reference code not in the questionnaire", 0) + 1
            )
            continue
        out.append((p, item, code))
    return out, skipped


def _row(variant: str, k: int, persona: Any, item: Any, position: int, seed: int) -> Row:
    from ..wvs import build_messages

    messages = [dict(m) for m in build_messages(EVAL_STYLE, persona, item, "base", seed)]
    messages.append({"role": "assistant", "content": str(position)})
    return {
        "id": f"{variant}/{k}",
        "task": SURVEY_TASK,
        "scenario": f"survey/{persona.country}/{persona.id}",  # the split holds out personas, never rows
        "episode": None,
        "culture": persona.country,
        "item": item.id,
        "messages": messages,
    }


def _position(item: Any, code: int, seed: int) -> int:
    from ..wvs import option_order

    return option_order(item, "base", seed).index(code) + 1


def survey_rows(cfg: DatasetConfig, ev: Any) -> tuple[list[Row], dict[str, int]]:
    """The rows of a survey_* variant for the run's evaluation settings `ev` (clca.wvs.EvalConfig)."""
    if cfg.variant not in SURVEY_VARIANTS:
        raise DataError(f"survey_rows: {cfg.variant!r} is not a survey control variant")
    q_full, eval_ids, ref, survey = _eval_parts(ev)
    target = _target(cfg, ev, set(ref.countries))
    culture = target
    if cfg.variant == "survey_other":
        from ..wvs import resolve_country

        if not cfg.control_culture:
            raise DataError("dataset.variant survey_other needs dataset.control_culture (the other culture)")
        culture = resolve_country(cfg.control_culture, set(ref.countries))
        if culture == target:
            raise DataError(f"dataset.control_culture {cfg.control_culture!r} is the target culture {target}")
    if culture not in ref.countries:
        raise DataError(f"survey controls: no survey answers for {culture}")
    have = set(ref.countries[culture].items)
    if cfg.variant == "survey_transfer":
        ids = [i.id for i in q_full if i.id not in set(eval_ids)]
        if ids and survey is not None and survey.of(culture):  # read again: eval_inputs keeps the eval items only
            survey = _survey_with(ev, q_full.select(ids), culture)
            answered = {i for r in survey.of(culture) for i in r.answers}
            ids = [i for i in ids if i in answered]
        else:
            ids = [i for i in ids if i in have]
        if not ids:
            raise DataError(
                f"dataset.variant survey_transfer: {culture} has no answers to items outside the evaluation's "
                f"{len(eval_ids)} items (evaluate fewer items with eval.items, or give eval.survey / a questionnaire "
                "with more items)"
            )
    else:
        ids = [i for i in eval_ids if i in have or (survey is not None and survey.of(culture))]
    if not ids:
        raise DataError(f"dataset.variant {cfg.variant}: {culture} has no answers to the evaluation items")
    src = _training_personas(ev, ref, survey, culture, cfg.control_personas, cfg.seed)
    skipped: dict[str, int] = {}
    if src.from_respondents:  # items no training respondent answered get no rows (counted)
        answered = {i for p in src.personas for i in p.answers}
        for i in ids:
            if i not in answered:
                skipped[f"item {i}: no training respondent answered it"] = 1
        ids = [i for i in ids if i in answered]
        if not ids:
            raise DataError(f"dataset.variant {cfg.variant}: no training respondent of {culture} answered the items")
    items = [q_full.get(i) for i in ids]
    triples, more = _answers(src, items, ref, cfg.control_rows, cfg.seed)
    for k, v in more.items():
        skipped[k] = skipped.get(k, 0) + v
    rng = random.Random(f"{cfg.variant}|{cfg.seed}")
    positions = [_position(item, code, ev.seed) for _, item, code in triples]
    if cfg.variant == "survey_shuffled":
        positions = _shuffled(triples, positions, rng)
    elif cfg.variant == "survey_uniform":
        positions = [rng.randint(1, item.scale_length) for _, item, _ in triples]
    rows = [
        _row(cfg.variant, k, p, item, pos, ev.seed)
        for k, ((p, item, _), pos) in enumerate(zip(triples, positions, strict=True))
    ]
    return rows, skipped


def _survey_with(ev: Any, q: Any, culture: str) -> Any:
    """The respondent files read again for items outside the evaluation (eval_inputs keeps only its items)."""
    from ..wvs import survey_reference

    survey, _ = survey_reference(ev.survey, q, ev.survey_labels, keep={culture})
    return survey


def _shuffled(triples: list[tuple[Any, Any, int]], positions: list[int], rng: random.Random) -> list[int]:
    """The answers permuted among rows whose items have the same number of options (every answer stays a
    valid option; the answer marginals per scale length are kept exactly)."""
    groups: dict[int, list[int]] = {}
    for k, (_, item, _) in enumerate(triples):
        groups.setdefault(item.scale_length, []).append(k)
    out = list(positions)
    for idx in groups.values():
        vals = [positions[k] for k in idx]
        rng.shuffle(vals)
        for k, v in zip(idx, vals, strict=True):
            out[k] = v
    return out
