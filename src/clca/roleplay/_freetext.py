"""Free-text turn decoding: the action type by option scoring, then the argument as free text in character.

A small model asked for a turn as a JSON object fills the string field with nearby prompt text; asked to
continue `Name: "` it talks. So in-process models (which can continue a prefilled reply) choose the
action type by scoring the five Sotopia types as the answer (sampled at the episode's temperature) and
then write the argument after the prefilled start of the reply, stopping at the closing quote (speech)
or the line end (a gesture or action). Servers get the same questions without the prefill and their
reply is cut to the quoted words.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal

from ._models import ActionType, RoleplayConfig, Turn

TYPE_OPTIONS: tuple[str, ...] = tuple(a.value for a in ActionType)
#: where a free-text argument ends: the closing quote of speech (straight or typographic), or the line end
SPEECH_STOP = ('"', "\u201d", "\n")
DESCRIPTION_STOP = ("\n",)
_QUOTES = "\"'\u201c\u201d\u00ab\u00bb*"

Decoding = Literal["structured", "freetext"]


def in_process(llm: Any) -> bool:
    """True for backends that can continue a prefilled assistant reply (the in-process ones)."""
    return callable(getattr(llm, "prompt_text", None))


def decoding_for(cfg: RoleplayConfig, llm: Any) -> Decoding:
    """The turn decoding path for a backend: turn_format, with auto = freetext in-process, structured remote."""
    if cfg.turn_format == "auto":
        return "freetext" if in_process(llm) else "structured"
    return cfg.turn_format


def type_options(turns: Sequence[Turn]) -> tuple[str, ...]:
    """The action types offered for the next turn: all five, except that nobody leaves or idles before the
    episode's first speech (an episode without speech is failed anyway; small models pick "leave" early)."""
    if any(t.action_type is ActionType.speak for t in turns):
        return TYPE_OPTIONS
    return tuple(o for o in TYPE_OPTIONS if o not in (ActionType.leave.value, ActionType.none.value))


def sample_type(
    probs: Sequence[float], temperature: float, seed: int, options: Sequence[str] = TYPE_OPTIONS
) -> ActionType:
    """Sample an action type from option probabilities sharpened/flattened by the temperature (0 = argmax)."""
    if temperature <= 0.0:
        best = max(range(len(probs)), key=lambda i: probs[i])
        return ActionType(options[best])
    logs = [math.log(p) / temperature if p > 0 else -math.inf for p in probs]
    m = max(logs)
    weights = [math.exp(x - m) for x in logs]
    r = random.Random(seed).random() * sum(weights)
    acc = 0.0
    for opt, w in zip(options, weights, strict=True):
        acc += w
        if r < acc:
            return ActionType(opt)
    return ActionType(options[max(range(len(weights)), key=lambda i: weights[i])])


def stops_for(action_type: ActionType) -> tuple[str, ...]:
    return SPEECH_STOP if action_type is ActionType.speak else DESCRIPTION_STOP


def parse_argument(text: str, action_type: ActionType, name: str, *, prefilled: bool) -> str:
    """The argument in a free-text reply.

    prefilled: the reply continued `Name: "` (speech) or `Name` (description), so the text is the argument
    up to the stop. Otherwise (a server's whole reply) a leading `Name:` is dropped and, for speech, the
    first quoted part is taken when there is one.
    """
    t = text.strip()
    if not prefilled:
        t = t.split("\n", 1)[0].strip()
        if t.casefold().startswith(name.casefold()):
            t = t[len(name) :].lstrip(" :-")
        if action_type is ActionType.speak and t[:1] in ('"', "\u201c"):
            end = min((i for i in (t.find('"', 1), t.find("\u201d", 1)) if i > 0), default=len(t))
            t = t[1:end]
    elif action_type is not ActionType.speak:
        t = t.lstrip(" :-")
        if t[:2] in ("'s", "\u2019s"):  # `Name` continued as "'s hands shake": keep the possessive
            return "'" + t[1:].strip().rstrip(_QUOTES).strip()
    return t.strip().strip(_QUOTES).strip()
