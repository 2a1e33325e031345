"""Structured output by prompting, validation and a bounded number of re-asks.

Backends that can constrain decoding do better (see the in-process guided decoder and the
openai backend's json_schema response_format); all of them validate with pydantic and never
return a default object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ...errors import StructuredOutputError
from .._protocol import GenParams, Message, T
from ._jsonschema import fields, resolve_or_empty

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


def schema_in_words(schema: type[BaseModel]) -> str:
    """The instruction for servers without any JSON mode: every field described in words (template
    `llm_schema_words`), then the exact JSON schema."""
    from ...prompts import render

    js = schema.model_json_schema()
    text = render("llm_schema_words", fields=_describe(js), schema=json.dumps(js, ensure_ascii=False))
    return "\n\n" + text


def _describe(js: dict[str, Any]) -> list[dict[str, str]]:
    """Every field of the schema (nested ones as `outer.inner` / `outer[].inner`) with its type and rules."""
    out: list[dict[str, str]] = []
    for f in fields(js, js):
        v = f.value
        kind = v.get("type", "value")
        rules: list[str] = []
        if "enum" in v:
            rules.append("one of " + ", ".join(json.dumps(x, ensure_ascii=False) for x in v["enum"]))
        if "const" in v:
            rules.append(f"exactly {json.dumps(v['const'], ensure_ascii=False)}")
        for key, word in (("minimum", "at least"), ("maximum", "at most")):
            if key in v:
                rules.append(f"{word} {v[key]}")
        if "maxLength" in v:
            rules.append(f"at most {v['maxLength']} characters")
        if "minItems" in v or "maxItems" in v:
            rules.append(f"{v.get('minItems', 0)} to {v.get('maxItems', 'any number of')} items")
        if kind == "array" and isinstance(v.get("items"), dict):
            kind = f"list of {resolve_or_empty(v['items'], js).get('type', 'object')}"
        out.append(
            {
                "name": f.path,
                "type": kind,
                "required": "required" if f.required else "optional",
                "rules": "; ".join(rules),
                "description": str(f.node.get("description") or v.get("description") or ""),
            }
        )
    return out


def with_instruction(
    messages: Sequence[Message], schema: type[BaseModel], instruction: str | None = None
) -> list[Message]:
    text = schema_instruction(schema) if instruction is None else instruction
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1]["role"] == "user":
        msgs[-1]["content"] = msgs[-1]["content"] + text
    else:
        msgs.append({"role": "user", "content": text.strip()})
    return msgs  # type: ignore[return-value]


async def structured_by_reasking(
    generate: Callable[[list[Message], GenParams], Awaitable[str]],
    messages: Sequence[Message],
    schema: type[T],
    params: GenParams,
    max_attempts: int,
    instruction: str | None = None,
) -> T:
    """Ask, validate, and on failure re-ask with the validation error, at most max_attempts times.
    `instruction` replaces the default JSON-schema instruction appended to the last user message."""
    msgs = with_instruction(messages, schema, instruction)
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
