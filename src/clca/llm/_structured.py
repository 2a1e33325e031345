"""Structured output by prompting, validation and a bounded number of re-asks.

Backends that can constrain decoding do better (see the in-process guided decoder and the
openai backend's json_schema response_format); all of them validate with pydantic and never
return a default object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ValidationError

from ..errors import StructuredOutputError
from ._protocol import GenParams, Message, T

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def schema_instruction(schema: type[BaseModel]) -> str:
    """The instruction appended to the last user message when asking for JSON."""
    js = json.dumps(schema.model_json_schema(), ensure_ascii=False)
    return f"\n\nAnswer with one JSON object only, no other text, matching this JSON schema:\n{js}"


def extract_json(text: str) -> str:
    """The first balanced JSON object in text (handles code fences and leading chatter)."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise ValueError("unterminated JSON object in the output")


def parse_as(schema: type[T], text: str) -> T:
    """Validate text as schema; raises ValueError with a short reason."""
    try:
        return schema.model_validate_json(extract_json(text))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(root)"
        raise ValueError(f"{loc}: {first['msg']}") from None


def with_instruction(messages: Sequence[Message], schema: type[BaseModel]) -> list[Message]:
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1]["role"] == "user":
        msgs[-1]["content"] = msgs[-1]["content"] + schema_instruction(schema)
    else:
        msgs.append({"role": "user", "content": schema_instruction(schema).strip()})
    return msgs  # type: ignore[return-value]


async def structured_by_reasking(
    generate: Callable[[list[Message], GenParams], Awaitable[str]],
    messages: Sequence[Message],
    schema: type[T],
    params: GenParams,
    max_attempts: int,
) -> T:
    """Ask, validate, and on failure re-ask with the validation error, at most max_attempts times."""
    msgs = with_instruction(messages, schema)
    reasons: list[str] = []
    for attempt in range(max_attempts):
        p = params if params.seed is None else GenParams(**{**params.__dict__, "seed": params.seed + attempt})
        text = await generate(msgs, p)
        try:
            return parse_as(schema, text)
        except ValueError as e:
            reasons.append(str(e))
            msgs = msgs + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"That was not valid ({e}). Reply with the corrected JSON only."},
            ]  # type: ignore[list-item]
    raise StructuredOutputError(schema.__name__, max_attempts, reasons)
