"""Cultural adaptation of seed scenarios and norm-based generation, through the run database.

Both stages write kind "scenario" artifacts (keys "<culture code>/<seed id>" and
"<culture code>/norm-<norm id>") as soon as each is done, skip keys already done, and record
every failure with its reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._bounds import seed_field, temperature_field
from ..culture import Culture, UnknownCultureError, resolve_culture
from ..errors import ConfigError, DataError, StructuredOutputError
from ..failures import failure_reason
from ..llm import LLM, GenParams, Message
from ..prompts import render
from ..records import SCENARIO, culture_meta, scenario_key
from ..runner import RunSummary, attempt_seed, run_items
from ..store import RunStore
from ._io import load_seeds
from ._names import draw_name
from ._norms import Norm
from ._schema import AdaptedDraft, DraftCharacter, Provenance, Scenario, ScenarioDraft
from ._validate import check_scenario

KIND = SCENARIO
D = TypeVar("D", AdaptedDraft, ScenarioDraft)


class AdaptConfig(BaseModel):
    """Settings of `adapt_scenarios` and `generate_from_norms`."""

    model_config = ConfigDict(extra="forbid")

    n: int | None = Field(None, ge=1, description="how many seeds to adapt (or norms to use); None = all")
    seeds: list[str] | None = Field(None, description="seed ids to use (adaptation) or to draw examples from")
    seeds_file: Path | None = Field(None, description="a JSONL file of seeds instead of the shipped ones")
    sotopia: str | None = Field(
        None,
        description="seed with Sotopia's scenarios: a directory of Sotopia's four profile JSONL files, or "
        "'hf' / 'hf:OWNER/NAME' to download them from Hugging Face (default cmu-lti/sotopia-space)",
    )
    sotopia_per_env: int | None = Field(
        1, ge=1, description="env-agent combos of each Sotopia environment used as seeds (None = all of them)"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="asks per scenario until it passes the checks")
    schema_attempts: int = Field(2, ge=1, le=5, description="re-asks inside one ask for schema-valid JSON")
    temperature: float = temperature_field(0.7)
    max_tokens: int = Field(
        1536, ge=16, le=8192, description="token budget per answer (guided decoders: per field, capped by its length)"
    )
    seed: int = seed_field(0, "base random seed (seed selection and sampling)")
    concurrency: int = Field(8, ge=1, le=256)
    progress: bool = Field(True, description="show progress bars")

    @model_validator(mode="after")
    def _one_seed_source(self) -> AdaptConfig:
        if self.sotopia is not None and self.seeds_file is not None:
            raise ValueError("seeds_file and sotopia both name the seeds; set one of them")
        return self


def load_seed_pool(cfg: AdaptConfig) -> list[Scenario]:
    """The seeds a config names: Sotopia's scenarios (`sotopia`), a JSONL file (`seeds_file`) or the
    shipped ones, restricted to `seeds` ids when given."""
    if cfg.sotopia is None:
        return load_seeds(cfg.seeds_file, cfg.seeds)
    from ._sotopia import sotopia_seeds

    return sotopia_seeds(cfg.sotopia, cfg.sotopia_per_env, cfg.seeds)


def _item_seed(base: int, key: str) -> int:
    return base * 1_000_003 + int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)


def _select(seeds: list[Scenario], n: int | None, seed: int) -> list[Scenario]:
    if n is None or n >= len(seeds):
        if n is not None and n > len(seeds):
            raise ConfigError(
                f"--n {n} is more than the {len(seeds)} available seeds; one scenario per seed and culture"
            )
        return seeds
    picked = set(random.Random(seed).sample(range(len(seeds)), n))
    return [s for i, s in enumerate(seeds) if i in picked]


def _draft_json(d: BaseModel, *, hide_names: bool = False) -> str:
    """Compact JSON of a draft for a prompt; hide_names drops the characters' names (the adaptation
    replaces them anyway, and small models otherwise copy them)."""
    data = d.model_dump(mode="json")
    if hide_names:
        subs: list[tuple[re.Pattern[str], str]] = []
        for i, c in enumerate(data["characters"], 1):
            first, last = c.pop("first_name", ""), c.pop("last_name", "")
            for name in (f"{first} {last}", first, last):  # also inside the text (Sotopia's profiles use them)
                if len(name.strip()) > 1:
                    subs.append((re.compile(rf"\b{re.escape(name.strip())}\b"), f"[person {i}]"))

        def mask(v: object) -> object:
            if isinstance(v, str):
                for pat, repl in subs:
                    v = pat.sub(repl, v)
            return v

        data["setting"] = mask(data["setting"])
        data["characters"] = [{k: mask(v) for k, v in c.items()} for c in data["characters"]]
    return json.dumps(data, ensure_ascii=False)


def _record_culture(store: RunStore, culture: Culture) -> None:
    """Keep the profile of every culture used, so later stages can describe custom cultures too."""
    store.set_meta(culture_meta(culture.code), culture.model_dump(mode="json"))


def _record_error(store: RunStore, key: str, e: Exception, llm: LLM) -> None:
    """A model error (HTTP status after retries, unreachable server) ends as a failed row with its reason."""
    store.fail(KIND, key, failure_reason(e), data={"model": llm.model_id})


#: problems that concern only the second person being a copy of the first; fixed by re-asking for that person
_PAIR_PROBLEMS = ("same_names", "same_goals", "goal_revealed", "implausible_name")


#: problems a draw of names from Faker's data fixes
_NAME_PROBLEMS = ("name_not_of_culture", "names_unchanged", "same_names", "implausible_name")
# problems fixed by drawing both names at once (a copied second person is re-asked alone instead)
_DRAW_ON = frozenset({"name_not_of_culture", "names_unchanged"})
# a draft whose only problems are names (e.g. "Lena Lena" for both, or a repaired second person that took the
# first one's first name) gets drawn names too: nothing else needs a re-ask, and a small model repeats them
_NAME_ONLY = frozenset(_NAME_PROBLEMS)


def _draw_names(draft: D, culture: Culture, ref: Scenario | None, seed: int) -> D:
    """The draft with both people's names drawn from Faker's names of the culture (gender kept)."""
    rng = random.Random(seed)
    avoid = {n for c in (ref.characters if ref is not None else []) for n in (c.first_name, c.last_name)}
    chars = []
    for c in draft.characters:
        drawn = draw_name(culture.code, c.gender, rng, avoid)
        if drawn is None:
            return draft
        avoid.update(drawn)
        chars.append(c.model_copy(update={"first_name": drawn[0], "last_name": drawn[1]}))
    return draft.model_copy(update={"characters": chars})


def _keep_people(draft: D, ref: Scenario | None) -> D:
    """An adaptation changes the culture, not who the two people are: each adapted character keeps the
    seed character's gender and pronouns (a small model writes e.g. a name or "males" there), so the
    name check and drawn names follow the seed's gender. Norm-based drafts are left as written."""
    if ref is None or not isinstance(draft, AdaptedDraft):
        return draft
    chars = [c.model_copy(update={"gender": r.gender, "pronouns": r.pronouns})
             for c, r in zip(draft.characters, ref.characters, strict=True)]  # fmt: skip
    return draft.model_copy(update={"characters": chars})


async def _ask_valid(
    llm: LLM,
    messages: list[Message],
    schema: type[D],
    ref: Scenario | None,
    cfg: AdaptConfig,
    key: str,
    culture: Culture,
) -> tuple[D | None, int, list[str], bool]:
    """Ask until a draft passes the checks or attempts run out. Returns (draft, attempts, reasons, drawn).

    When a draft's only problems are that the second person copies the first (same name, same goal,
    or a goal spelled out in the other's public info), the next attempt asks for the second person
    alone (template `scenarios_second_person`), which small models get right far more often than a
    whole rewrite; otherwise the whole scenario is asked again with the problems listed.
    When a draft's names are not of the culture or copied from the seed, or when its only problems are names
    (implausible, or the same for both), both people get names drawn from Faker's names of the culture and the
    draft is checked again; other problems are then asked again on the draft with the drawn names
    (drawn = True). Every attempt's problems stay in reasons (counted in the provenance).
    """
    msgs = list(messages)
    reasons: list[str] = []
    base = _item_seed(cfg.seed, key)
    draft: D | None = None
    repair = False
    drawn_any = False
    for attempt in range(cfg.max_attempts):
        params = GenParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=attempt_seed(base, attempt))
        try:
            if repair and draft is not None:
                second = await llm.structured(_second_person_messages(draft, messages, culture.name), DraftCharacter,
                                              params, max_attempts=cfg.schema_attempts)  # fmt: skip
                draft = draft.model_copy(update={"characters": [draft.characters[0], second]})
            else:
                draft = await llm.structured(msgs, schema, params, max_attempts=cfg.schema_attempts)
        except StructuredOutputError as e:
            reasons.append(f"invalid_output: {e.reasons[-1] if e.reasons else e}")
            msgs, draft, repair = list(messages), None, False
            continue
        draft = _keep_people(draft, ref)
        problems = check_scenario(draft, ref, culture.code, culture.name)
        if not problems:
            return draft, attempt + 1, reasons, drawn_any
        reasons.append("; ".join(problems))
        kinds = {p.split(":")[0] for p in problems}
        if kinds & _DRAW_ON or kinds <= _NAME_ONLY:  # names are drawn, the rest is asked again
            drawn = _draw_names(draft, culture, ref, base + 104729 * attempt)
            rest = check_scenario(drawn, ref, culture.code, culture.name)
            if not rest:
                return drawn, attempt + 1, reasons, True
            if not {p.split(":")[0] for p in rest} & set(_NAME_PROBLEMS):  # go on from the drawn names
                draft, problems, drawn_any = drawn, rest, True
        repair = all(
            p.split(":")[0] in _PAIR_PROBLEMS and not p.startswith("implausible_name: character 1") for p in problems
        )
        msgs = [
            *messages,
            {"role": "assistant", "content": _draft_json(draft)},
            {"role": "user", "content": render("scenarios_fix", problems=problems)},
        ]
    return None, cfg.max_attempts, reasons, False


def _second_person_messages(
    draft: AdaptedDraft | ScenarioDraft, messages: list[Message], culture: str
) -> list[Message]:
    user = render("scenarios_second_person", culture_name=culture, setting=draft.setting,
                  first=draft.characters[0].model_dump())  # fmt: skip
    return [messages[0], {"role": "user", "content": user}]


async def _write_one(
    store: RunStore,
    llm: LLM,
    key: str,
    messages: list[Message],
    schema: type[D],
    ref: Scenario,
    cfg: AdaptConfig,
    culture: Culture,
    provenance: Provenance,
    domain: str | None,
) -> bool:
    """Ask for one scenario and store it under key, or record the failure with every reason.

    An adapted draft keeps the seed's (ref's) relationship; a norm-based draft chose its own. The stored
    provenance gets the model and the number of asks.
    """
    draft, attempts, reasons, drawn = await _ask_valid(llm, messages, schema, ref, cfg, key, culture)
    if draft is None:
        last = reasons[-1] if reasons else "unknown: no output"
        store.fail(KIND, key, f"{last} (after {attempts} attempts)", data={"reasons": reasons, "model": llm.model_id})
        return False
    scenario = Scenario(
        setting=draft.setting,
        relationship=draft.relationship if isinstance(draft, ScenarioDraft) else ref.relationship,
        characters=[c.to_character() for c in draft.characters],
        culture=culture.code,
        domain=domain,
        provenance=provenance.model_copy(
            update={
                "model": llm.model_id,
                "attempts": attempts,
                "names": "drawn" if drawn else "model",
                "rejected": dict(Counter(p.split(":")[0].strip() for r in reasons for p in r.split("; "))),
            }
        ),
    )
    store.put(KIND, key, scenario.model_dump(mode="json"))
    return True


def _messages(system: str, template: str, cult: Culture, **fields: str) -> list[Message]:
    """The system prompt and the user turn of one scenario request: `template` rendered for the culture."""
    user = render(template, culture_name=cult.name, culture_text=cult.describe(), **fields)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def adapt_scenarios(
    store: RunStore, llm: LLM, culture: str | Culture, cfg: AdaptConfig | None = None
) -> RunSummary:
    """Adapt seed scenarios to a culture; one scenario per seed, key "<culture code>/<seed id>"."""
    cfg = cfg or AdaptConfig()
    cult = resolve_culture(culture)
    seeds = _select(load_seed_pool(cfg), cfg.n, cfg.seed)
    _record_culture(store, cult)
    system = render("scenarios_system")

    async def one(seed: Scenario) -> bool:
        key = scenario_key(cult.code, seed.provenance.id)
        messages = _messages(
            system,
            "scenarios_adapt",
            cult,
            relationship=seed.relationship.value.replace("_", " "),
            scenario_json=_draft_json(seed.adapted_draft(), hide_names=True),
        )

        prov = Provenance(kind="adapted", id=seed.provenance.id, source=seed.provenance.source,
                          seed_id=seed.provenance.id)  # fmt: skip
        return await _write_one(store, llm, key, messages, AdaptedDraft, seed, cfg, cult, prov, seed.domain)

    return await run_items(
        seeds,
        one,
        is_done=lambda s: store.done(KIND, scenario_key(cult.code, s.provenance.id)),
        concurrency=cfg.concurrency,
        desc=f"adapt -> {cult.code}",
        progress=cfg.progress,
        on_error=lambda s, e: _record_error(store, scenario_key(cult.code, s.provenance.id), e, llm),
    )


async def generate_from_norms(
    store: RunStore, llm: LLM, norms: Sequence[Norm], cfg: AdaptConfig | None = None
) -> RunSummary:
    """One new scenario per norm, with one seed as a few-shot example; key "<culture code>/norm-<id>"."""
    cfg = cfg or AdaptConfig()
    todo = list(norms)[: cfg.n] if cfg.n else list(norms)
    cultures: dict[tuple[str, str], Culture] = {}
    for nm in todo:
        if nm.culture is None:
            raise DataError(f"norm {nm.id!r}: no culture (give one, or expand culture-free norms with expand_norms)")
        try:
            cultures[(nm.id, nm.culture)] = resolve_culture(nm.culture)
        except (UnknownCultureError, DataError) as e:  # name the norm that has the bad culture
            raise type(e)(f"norm {nm.id!r}: {e.one_line()}") from None
    for c in {c.code: c for c in cultures.values()}.values():
        _record_culture(store, c)
    pool = load_seed_pool(cfg)
    system = render("scenarios_system")

    def key_of(nm: Norm) -> str:
        return f"{cultures[(nm.id, nm.culture or '')].code}/norm-{nm.id}"

    async def one(nm: Norm) -> bool:
        key = key_of(nm)
        cult = cultures[(nm.id, nm.culture or "")]
        example = pool[random.Random(_item_seed(cfg.seed, key)).randrange(len(pool))]
        messages = _messages(
            system,
            "scenarios_from_norm",
            cult,
            norm=nm.norm,
            example_json=_draft_json(example.draft(), hide_names=True),
        )

        prov = Provenance(kind="norm", id=f"norm-{nm.id}", source=nm.source, seed_id=example.provenance.id,
                          norm=nm.norm)  # fmt: skip
        return await _write_one(store, llm, key, messages, ScenarioDraft, example, cfg, cult, prov, None)

    return await run_items(
        todo,
        one,
        is_done=lambda nm: store.done(KIND, key_of(nm)),
        concurrency=cfg.concurrency,
        desc="scenarios from norms",
        progress=cfg.progress,
        on_error=lambda nm, e: _record_error(store, key_of(nm), e, llm),
    )
