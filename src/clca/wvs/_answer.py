"""Asking a model one survey item as one persona: prompt styles, option-order and wording variants, and
the two answer modes (option log-probabilities; sampled answers parsed into options or "safeguarded")."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from ..llm import LLM, GenParams, Message
from ..prompts import render
from ._countries import country_name
from ._personas import Persona
from ._questionnaire import Item

Style = Literal["persona", "cultural", "anthropological", "none"]
Mode = Literal["logprobs", "generate"]
STYLES: tuple[str, ...] = ("persona", "cultural", "anthropological", "none")
# styles whose prompt uses the persona's demographics; the others are the same for every persona
PERSONA_STYLES = frozenset({"persona", "anthropological"})

GENERATE_MAX_TOKENS = 8  # reply length in generate mode (the reply should be one option number)

_REFUSAL = re.compile(
    r"\b(i cannot|i can't|i can not|i won't|as an ai|language model|i do not have (personal )?opinions|"
    r"i don't have (personal )?opinions|i'm not able|i am not able|prefer not)\b",
    re.I,
)


class Answer(BaseModel):
    """A model's answer distribution for one (persona, item, variant): probs over item codes in scale order,
    plus the share of safeguarded answers (refusals, unparseable or out-of-range)."""

    item: str
    persona: str
    culture: str
    style: str
    variant: str
    mode: str
    codes: list[int]
    probs: list[float]
    safeguarded: float = 0.0
    order: list[int] = Field(description="codes in the order shown to the model (option 1 first)")
    samples: list[str] = Field(default_factory=list)

    def with_safeguarded(self) -> list[float]:
        return [*self.probs, self.safeguarded]


def option_order(item: Item, variant: str, seed: int) -> list[int]:
    """Codes in display order: scale order, or a seeded permutation for variants named 'perm<k>'."""
    codes = item.codes
    if variant.startswith("perm"):
        rng = random.Random(f"{seed}/{item.id}/{variant}")
        codes = codes[:]
        rng.shuffle(codes)
    return codes


def question_text(item: Item, variant: str) -> str:
    if variant == "para":
        return item.paraphrase or item.text
    return item.text


def build_messages(style: str, persona: Persona, item: Item, variant: str, seed: int) -> list[Message]:
    """System prompt (persona/culture framing; shared by all items of a persona) + the question."""
    country = country_name(persona.country)
    order = option_order(item, variant, seed)
    user = render(
        "wvs_question",
        question=question_text(item, variant),
        options=[(k + 1, item.options[c]) for k, c in enumerate(order)],
    )
    if style == "none":
        return [{"role": "user", "content": user}]
    if style == "persona":
        system = render("wvs_persona_system", country=country, details=persona.details())
    elif style == "cultural":
        system = render("wvs_cultural_system", country=country)
    elif style == "anthropological":
        system = render("wvs_anthropological_system", country=country, details=persona.details())
    else:
        raise ValueError(f"unknown prompt style {style!r}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_answer(text: str, item: Item, order: Sequence[int]) -> int | None:
    """Code chosen by a generated reply, or None (safeguarded) for refusals, out-of-range or unparseable text.

    Accepts a leading option number ("3", "3.", "Option 3", "**3**") or, failing that, a reply that
    consists of one option's label. The first number decides; a number outside 1..K is not an answer.
    """
    t = text.strip()
    if not t or _REFUSAL.search(t):
        return None
    m = re.match(r"^\W*(?:option|answer|number)?\s*[:#]?\s*(\d+)\b", t, re.I)
    if m:
        k = int(m.group(1))
        return order[k - 1] if 1 <= k <= len(order) else None
    low = re.sub(r"[^a-z0-9 ]+", "", t.lower()).strip()
    for code in order:
        if re.sub(r"[^a-z0-9 ]+", "", item.options[code].lower()).strip() == low:
            return code
    return None


def answer_seed(*parts: object) -> int:
    """The sampling seed of one generate-mode prompt (the harness tasks send the same one)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


async def ask(
    llm: LLM,
    *,
    style: str,
    persona: Persona,
    item: Item,
    variant: str,
    mode: str,
    seed: int = 0,
    samples: int = 20,
    temperature: float = 1.0,
) -> Answer:
    """One answer distribution. logprobs: P(option number) from `llm.score_options`; generate: `samples`
    sampled replies parsed into options (unparseable -> safeguarded)."""
    messages = build_messages(style, persona, item, variant, seed)
    order = option_order(item, variant, seed)
    base = dict(
        item=item.id, persona=persona.id, culture=persona.country, style=style, variant=variant, mode=mode,
        codes=item.codes, order=order,
    )  # fmt: skip
    if mode == "logprobs":
        probs = await llm.score_options(messages, [str(k + 1) for k in range(len(order))])
        if len(probs) != len(order) or any(p < 0 for p in probs) or sum(probs) <= 0:
            raise ValueError(f"score_options returned an invalid distribution {probs!r}")
        total = sum(probs)
        by_code = {c: p / total for c, p in zip(order, probs, strict=True)}
        return Answer(**base, probs=[by_code[c] for c in item.codes], safeguarded=0.0)
    if mode != "generate":
        raise ValueError(f"unknown answer mode {mode!r}")
    sample_seed = answer_seed(seed, persona.id, item.id, variant)
    params = GenParams(temperature=temperature, max_tokens=GENERATE_MAX_TOKENS, n=samples, seed=sample_seed)
    result = await llm.chat(messages, params)
    counts = {c: 0 for c in item.codes}
    bad = 0
    for text in result.texts:
        code = parse_answer(text, item, order)
        if code is None:
            bad += 1
        else:
            counts[code] += 1
    n = len(result.texts)
    if n == 0:
        raise ValueError("the model returned no samples")
    return Answer(**base, probs=[counts[c] / n for c in item.codes], safeguarded=bad / n, samples=list(result.texts))
