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


def schema_in_words(schema: type[BaseModel]) -> str:
    """The instruction for servers without any JSON mode: every field described in words (template
    `llm_schema_words`), then the exact JSON schema."""
    from ..prompts import render

    js = schema.model_json_schema()
    fields = _describe(js, js, "")
    text = render("llm_schema_words", fields=fields, schema=json.dumps(js, ensure_ascii=False))
    return "\n\n" + text


def _describe(node: dict[str, Any], root: dict[str, Any], prefix: str) -> list[dict[str, str]]:
    node = _resolve(node, root)
    out: list[dict[str, str]] = []
    required = set(node.get("required", []))
    for name, sub in (node.get("properties") or {}).items():
        full = f"{prefix}{name}"
        sub = _resolve(sub, root)
        options = [_resolve(o, root) for o in sub.get("anyOf", []) if _resolve(o, root).get("type") != "null"]
        kind_node = options[0] if len(options) == 1 else sub
        kind = kind_node.get("type", "value")
        rules: list[str] = []
        if "enum" in kind_node:
            rules.append("one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in kind_node["enum"]))
        if "const" in kind_node:
            rules.append(f"exactly {json.dumps(kind_node['const'], ensure_ascii=False)}")
        for key, word in (("minimum", "at least"), ("maximum", "at most")):
            if key in kind_node:
                rules.append(f"{word} {kind_node[key]}")
        if "maxLength" in kind_node:
            rules.append(f"at most {kind_node['maxLength']} characters")
        if "minItems" in kind_node or "maxItems" in kind_node:
            rules.append(f"{kind_node.get('minItems', 0)} to {kind_node.get('maxItems', 'any number of')} items")
        if kind == "array" and isinstance(kind_node.get("items"), dict):
            kind = f"list of {_resolve(kind_node['items'], root).get('type', 'object')}"
        out.append(
            {
                "name": full,
                "type": kind,
                "required": "required" if name in required else "optional",
                "rules": "; ".join(rules),
                "description": str(sub.get("description") or kind_node.get("description") or ""),
            }
        )
        if kind_node.get("type") == "object" and kind_node.get("properties"):
            out.extend(_describe(kind_node, root, f"{full}."))
        items = kind_node.get("items")
        if kind_node.get("type") == "array" and isinstance(items, dict) and _resolve(items, root).get("properties"):
            out.extend(_describe(_resolve(items, root), root, f"{full}[]."))
    return out


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for _ in range(16):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node if isinstance(node, dict) else {}


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


def strict_compatible(schema: dict[str, Any]) -> bool:
    """OpenAI strict mode needs every object closed (additionalProperties false) with all keys required."""
    ok = True

    def walk(node: Any) -> None:
        nonlocal ok
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                if node.get("additionalProperties") is not False or set(node.get("required", [])) != set(
                    node["properties"]
                ):
                    ok = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return ok
