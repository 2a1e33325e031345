"""Asking a model one survey item as one persona: prompt styles, option-order and wording variants, and
the two answer modes (option log-probabilities; sampled answers parsed into options or "safeguarded")."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from ..countries import country_name
from ..llm import LLM, GenParams, Message
from ..prompts import render
from ._personas import Persona
from ._questionnaire import Item

Style = Literal["persona", "cultural", "anthropological", "none"]
Mode = Literal["logprobs", "generate"]
STYLES: tuple[str, ...] = ("persona", "cultural", "anthropological", "none")
# styles whose prompt uses the persona's demographics; the others are the same for every persona
PERSONA_STYLES = frozenset({"persona", "anthropological"})

_REFUSAL = re.compile(
    r"\b(i cannot|i can't|i can not|i won't|as an ai|language model|i do not have (personal )?opinions|"
    r"i don't have (personal )?opinions|i'm not able|i am not able|i am unable|i'm unable|prefer not|"
    r"rather not|no opinion)\b",
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


#: default reply budget in generate mode: enough for "Sure! My answer is 2 (Agree)." from chatty models
DEFAULT_MAX_TOKENS = 48
#: replies longer than this (in words) are only read through explicit cues ("(2)", "I choose 2", a label)
SHORT_REPLY_WORDS = 40
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
# digits, or a number word that ends the phrase ("I choose two." but not "I'd say one thing")
_NUM = r"(\d{1,3}\b|(?:" + "|".join(_WORD_NUMBERS) + r")(?=\s*(?:[.!,;)]|$)))"
_LEADING = re.compile(r"^\W*(?:(?:option|answer|number|choice)\s*)?[:#]?\s*(\d{1,3})(?![\d.,]\d)", re.I)
_PAREN = re.compile(r"[(\[]\s*(\d{1,3})\s*[)\]]")
_CUE = re.compile(
    r"\b(?:answer(?:\s+is)?|choose|chose|choice(?:\s+is)?|option|pick|select|go\s+with|say|number)\s*[:#]?\s*" + _NUM,
    re.I,
)
_ANY_NUMBER = re.compile(r"(?<![\d.,])\b(\d{1,3})(?![\d]|[.,]\d)")
_EITHER = re.compile(r"^\W*\d{1,3}\s*(?:or|/|and|-|to)\s*\d", re.I)
_MARKUP = re.compile(r"[*_`]+")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def _number(token: str) -> int:
    return int(token) if token.isdigit() else _WORD_NUMBERS[token.lower()]


def _by_number(k: int, order: Sequence[int]) -> int | None:
    return order[k - 1] if 1 <= k <= len(order) else None


def _labels_in(text: str, item: Item, order: Sequence[int]) -> set[int]:
    """Codes whose label occurs in the text as whole words; a label inside a longer matching one
    ("agree" in "strongly agree") does not count on its own."""
    t = f" {_norm(text)} "
    found = {c: _norm(item.options[c]) for c in order if f" {_norm(item.options[c])} " in t}
    return {c for c, lab in found.items() if not any(lab != o and f" {lab} " in f" {o} " for o in found.values())}


def parse_answer(text: str, item: Item, order: Sequence[int], short_words: int = SHORT_REPLY_WORDS) -> int | None:
    """Code chosen by a generated reply, or None (safeguarded). The first rule that applies decides:

    1. an empty reply, or a refusal ("I cannot", "as an AI", "I don't have opinions", ...) -> None;
    2. a leading option number: "3", "3.", "**3**", "Option 3", "Answer: 3", "3 - Agree" ("2 or 3" -> None);
    3. one distinct number in brackets anywhere: "Strongly agree (1)", "I pick [2]";
    4. a cue followed by a number (digits or one..ten): "My answer is 2", "I would choose two", "Option: 4";
    5. the reply is one option's label, or names exactly one label (normalised: case, punctuation and
       spacing ignored; "agree" inside "strongly agree" does not count): "Agree.", "I strongly agree";
    6. a short reply (at most `short_words` words) with exactly one distinct number: "I think 2 fits me".

    A number outside 1..K is no answer (None); several different numbers or labels with no rule above
    deciding are ambiguous (None). Numbers are option positions as shown, mapped to codes via `order`.
    """
    t = _MARKUP.sub("", text).strip()
    if not t or _REFUSAL.search(t):
        return None
    m = _LEADING.match(t)
    if m and _EITHER.match(t):  # "2 or 3", "2/3", "1-2": no single answer
        return None
    if m:
        return _by_number(int(m.group(1)), order)
    paren = {int(x) for x in _PAREN.findall(t)}
    if len(paren) == 1:
        return _by_number(paren.pop(), order)
    m = _CUE.search(t)
    if m:
        return _by_number(_number(m.group(1)), order)
    labels = _labels_in(t, item, order)
    if len(labels) == 1:
        return labels.pop()
    if labels:
        return None
    if len(t.split()) <= short_words:
        nums = {_number(x) for x in _ANY_NUMBER.findall(t)}
        if len(nums) == 1:
            return _by_number(nums.pop(), order)
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
    max_tokens: int = DEFAULT_MAX_TOKENS,
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
    params = GenParams(temperature=temperature, max_tokens=max_tokens, n=samples, seed=sample_seed)
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
