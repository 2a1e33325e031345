"""Schema-guided (constrained) decoding for the in-process backend.

The prompt is the conversation plus a short list of the fields (template `llm_guided_instruction`).
We walk the pydantic JSON schema and write the JSON skeleton (braces, keys, commas, quotes)
ourselves; the model only produces the values:

  * string           -> free generation after ` "`, stopped at a quote or newline (no empty value:
                        quote/blank tokens and EOS are banned at the first step), cut to maxLength;
                        the text is JSON-escaped by us, so the JSON is always well formed
  * enum / Literal / const / bool
                     -> choice: every allowed value is scored as a continuation (summed token
                        logprobs, one batched forward pass); argmax when greedy, else sampled
  * integer with a small bounded range (<= 101 values) -> choice over all values
  * bounded number   -> choice over a 21-point grid between the bounds
  * other numbers    -> generation restricted to digit tokens (and '-', '.'), then parsed
  * array            -> items generated one by one; after minItems, a choice between `]` and `,`;
                        at most maxItems (default 5)
  * object           -> every property in schema order (nested models and $ref resolved)
  * Optional[X]      -> choice between `null` and X's opening character (string/object/array),
                        else X is generated
Schemas this walker cannot follow (dicts, tuples, unions of several non-null types that are not
all constants) fall back to prompting + validation + re-asking through `chat`.

Every model call goes through the backend's batcher, so many concurrent `structured` calls share
batches. The result is validated with pydantic; on failure the request is re-asked (greedy requests
sample at temperature 0.7 on re-asks, with seed + attempt) and after max_attempts a
StructuredOutputError with every reason is raised, never a default object.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from ...errors import StructuredOutputError
from .._protocol import ChatResult, GenParams, Message, T, TokenLogprob
from ._jsonschema import SchemaRefError, alternatives, fields, resolve, split_null
from ._structured import structured_by_reasking


class TokenModel(Protocol):
    """What guided decoding needs of an in-process model (`HFModel`): tokens in, tokens and logprobs out."""

    @property
    def tokenizer(self) -> Any: ...

    def encode(self, text: str) -> list[int]: ...

    def prompt_text(self, messages: Sequence[Message]) -> str: ...

    async def generate_ids(self, prompt_ids: list[int], rows: list[dict[str, Any]]) -> list[Any]: ...

    async def score_ids(
        self, prompt_ids: list[int], continuations: list[list[int]], top_logprobs: int = 0
    ) -> list[list[TokenLogprob]]: ...

    async def chat(self, messages: Sequence[Message], params: GenParams = ...) -> ChatResult: ...


DEFAULT_MAX_ITEMS = 5
CHOICE_LIMIT = 101
GRID_POINTS = 21
RETRY_TEMPERATURE = 0.7
_NUM_RE = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


class UnsupportedSchema(Exception):
    """The walker cannot follow this schema; the caller falls back to prompting."""


class GuideError(Exception):
    """A value could not be produced (e.g. digits that do not form a number)."""


@dataclass
class _Vocab:
    """Token sets the guide needs, computed once per tokenizer."""

    no_start: list[int]  # tokens that may not open a string value (quote, blank, EOS)
    digits: list[int]
    number: list[int]  # digits plus '-', '.', and the terminators below
    terminators: list[int]


def _vocab(model: TokenModel) -> _Vocab:
    cached = getattr(model, "_guided_vocab", None)
    if cached is not None:
        return cached
    tok = model.tokenizer
    size = len(tok)
    no_start, digits, signs, terms = [], [], [], []
    for i in range(size):
        s = tok.decode([i])
        if not s.strip() or s.lstrip().startswith('"') or "\n" in s:
            no_start.append(i)
        if s.isdigit() and s.isascii():
            digits.append(i)
        elif s in ("-", "."):
            signs.append(i)
        elif s in (",", "}", "]", "\n", ",\n", " "):
            terms.append(i)
    eos = [t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None]
    v = _Vocab(sorted(set(no_start + eos)), digits, digits + signs + terms, terms)
    model._guided_vocab = v  # type: ignore[attr-defined]
    return v


# ---------------------------------------------------------------------------------------------------- schema


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`_jsonschema.resolve` against the schema's definitions; what it cannot follow is unsupported here."""
    try:
        return resolve(node, {"$defs": defs})
    except SchemaRefError as e:
        raise UnsupportedSchema(str(e)) from None


def check_supported(node: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> None:
    """Raise UnsupportedSchema when the walker cannot produce this node."""
    if depth > 12:
        raise UnsupportedSchema("schema nested too deeply (recursive model?)")
    node = _resolve(node, defs)
    if "enum" in node or "const" in node:
        return
    if (alts := alternatives(node)) is not None:
        non_null, _ = split_null([_resolve(a, defs) for a in alts])
        if len(non_null) == 1:
            return check_supported(non_null[0], defs, depth + 1)
        if all("enum" in a or "const" in a or a.get("type") == "boolean" for a in non_null):
            return
        raise UnsupportedSchema("union of several types")
    typ = node.get("type")
    if typ == "object":
        if not node.get("properties") or node.get("additionalProperties") not in (None, False):
            raise UnsupportedSchema("free-form object / dict")
        for sub in node["properties"].values():
            check_supported(sub, defs, depth + 1)
    elif typ == "array":
        if "prefixItems" in node or "items" not in node:
            raise UnsupportedSchema("tuple or untyped array")
        check_supported(node["items"], defs, depth + 1)
    elif typ not in ("string", "integer", "number", "boolean", "null"):
        raise UnsupportedSchema(f"type {typ!r}")


def _opening(node: dict[str, Any]) -> str | None:
    return {"string": ' "', "object": " {", "array": " ["}.get(node.get("type", ""))


def _bounds(node: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    lo, hi = node.get("minimum"), node.get("maximum")
    if "exclusiveMinimum" in node:
        lo = node["exclusiveMinimum"] + (1 if integer else 1e-9)
    if "exclusiveMaximum" in node:
        hi = node["exclusiveMaximum"] - (1 if integer else 1e-9)
    return lo, hi


def _fmt(x: float) -> str:
    s = f"{x:.6g}"
    return s if "e" not in s else json.dumps(x)


# ---------------------------------------------------------------------------------------------------- walker


class _Guide:
    """Writes one JSON value for one attempt; `out` is the assistant text so far."""

    def __init__(self, model: TokenModel, prompt: str, temperature: float, top_p: float, seed: int, max_tokens: int):
        self.model, self.prompt = model, prompt
        self.temperature, self.top_p, self.seed, self.max_tokens = temperature, top_p, seed, max_tokens
        self.out = ""
        self.calls = 0
        self.rng = random.Random(seed)
        self.vocab = _vocab(model)

    def _ids(self) -> list[int]:
        return self.model.encode(self.prompt + self.out)

    async def choose(self, options: Sequence[str]) -> int:
        """Index of the option the model prefers (sampled when temperature > 0); the option is emitted."""
        if len(options) == 1:
            self.out += options[0]
            return 0
        conts = [self.model.encode(o) for o in options]
        lps = await self.model.score_ids(self._ids(), conts)
        totals = [sum(t.logprob for t in toks) for toks in lps]
        if self.temperature > 0:
            m = max(totals)
            weights = [math.exp((x - m) / self.temperature) for x in totals]
            k = self.rng.choices(range(len(options)), weights=weights)[0]
        else:
            k = max(range(len(options)), key=lambda i: totals[i])
        self.out += options[k]
        return k

    async def generate(self, max_tokens: int, stop: tuple[str, ...], **constraints: Any) -> str:
        row = {
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": stop,
            "seed": self.seed,
            "sample_index": self.calls,
            "ignore_eos": False,
            **constraints,
        }
        self.calls += 1
        (res,) = await self.model.generate_ids(self._ids(), [row])
        return res.text

    async def value(self, node: dict[str, Any], defs: dict[str, Any]) -> None:
        """Emit ' ' + a JSON value for node (the leading space follows ':' / ',' / '[')."""
        node = _resolve(node, defs)
        if "const" in node:
            self.out += " " + json.dumps(node["const"], ensure_ascii=False)
            return
        if "enum" in node:
            await self.choose([" " + json.dumps(v, ensure_ascii=False) for v in node["enum"]])
            return
        if (alts := alternatives(node)) is not None:
            await self._union([_resolve(a, defs) for a in alts], defs)
            return
        typ = node.get("type")
        if typ == "object":
            await self._object(node, defs)
        elif typ == "array":
            await self._array(node, defs)
        elif typ == "string":
            await self._string(node)
        elif typ == "integer":
            await self._number(node, integer=True)
        elif typ == "number":
            await self._number(node, integer=False)
        elif typ == "boolean":
            await self.choose([" true", " false"])
        elif typ == "null":
            self.out += " null"
        else:
            raise UnsupportedSchema(f"type {typ!r}")

    async def _union(self, alts: list[dict[str, Any]], defs: dict[str, Any]) -> None:
        non_null, has_null = split_null(alts)
        if len(non_null) == 1:
            other = non_null[0]
            opening = _opening(other)
            if has_null and opening is not None:
                before = self.out
                if await self.choose([" null", opening]) == 0:
                    return
                self.out = before
            await self.value(other, defs)
            return
        options: list[str] = []
        for a in non_null:
            if "const" in a:
                options.append(" " + json.dumps(a["const"], ensure_ascii=False))
            elif "enum" in a:
                options += [" " + json.dumps(v, ensure_ascii=False) for v in a["enum"]]
            else:
                options += [" true", " false"]
        if has_null:
            options.append(" null")
        await self.choose(options)

    async def _object(self, node: dict[str, Any], defs: dict[str, Any]) -> None:
        self.out += " {"
        for i, (name, sub) in enumerate(node["properties"].items()):
            self.out += ("" if i == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ":"
            await self.value(sub, defs)
        self.out += "}"

    async def _array(self, node: dict[str, Any], defs: dict[str, Any]) -> None:
        lo = int(node.get("minItems", 0))
        hi = int(node.get("maxItems", max(DEFAULT_MAX_ITEMS, lo)))
        item = _resolve(node["items"], defs)
        self.out += " ["
        n = 0
        while n < hi:
            if n >= lo:  # the model decides whether the list goes on
                options = ["]", ","] if n > 0 else ["]", _opening(item)]
                if options[1] is not None:
                    before = self.out
                    stop = await self.choose(options) == 0  # type: ignore[arg-type]
                    self.out = before
                    if stop:
                        break
            if n > 0:
                self.out += ","
            await self.value(item, defs)
            n += 1
        self.out += "]"

    async def _string(self, node: dict[str, Any]) -> None:
        self.out += ' "'
        max_len = node.get("maxLength")
        budget = self.max_tokens if max_len is None else max(1, min(self.max_tokens, int(max_len) + 4))
        text = await self.generate(budget, ('"', "\n"), banned_first_ids=self.vocab.no_start)
        text = text.strip()
        if max_len is not None:
            text = text[: int(max_len)].rstrip()
        self.out = self.out[:-1] + json.dumps(text, ensure_ascii=False)

    async def _number(self, node: dict[str, Any], integer: bool) -> None:
        lo, hi = _bounds(node, integer)
        if integer and lo is not None and hi is not None and 0 <= hi - lo < CHOICE_LIMIT:
            await self.choose([f" {v}" for v in range(int(math.ceil(lo)), int(math.floor(hi)) + 1)])
            return
        if not integer and lo is not None and hi is not None and hi > lo:
            grid = sorted({_fmt(lo + (hi - lo) * k / (GRID_POINTS - 1)) for k in range(GRID_POINTS)}, key=float)
            await self.choose([f" {g}" for g in grid])
            return
        self.out += " "
        allowed = self.vocab.digits if integer else self.vocab.number
        allowed = sorted(set(allowed) | set(self.vocab.terminators))
        text = await self.generate(
            12, (",", "}", "]", "\n", " "), allowed_ids=allowed, banned_first_ids=self.vocab.terminators
        )
        m = _NUM_RE.match(text.strip())
        if not m:
            raise GuideError(f"could not read a number from {text!r}")
        num = m.group(0)
        if integer and not re.fullmatch(r"-?\d+", num):
            raise GuideError(f"expected an integer, got {num!r}")
        self.out += num


def guided_messages(messages: Sequence[Message], js: dict[str, Any], defs: dict[str, Any]) -> list[Message]:
    """The conversation plus a short field list (the skeleton we write carries the structure, so the
    full JSON schema, which would triple the prompt length, is not needed)."""
    from ...prompts import render

    listed = [
        {"name": f.name, "description": f.node.get("description", "")}
        for f in fields(_resolve(js, defs), {"$defs": defs}, nested=False)
    ]
    note = render("llm_guided_instruction", fields=listed)
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1]["role"] == "user":
        msgs[-1]["content"] = msgs[-1]["content"] + "\n\n" + note
    else:
        msgs.append({"role": "user", "content": note})
    return msgs  # type: ignore[return-value]


async def guided_structured(
    model: TokenModel,
    messages: Sequence[Message],
    schema: type[T],
    params: GenParams,
    max_attempts: int,
) -> T:
    """Validated instance of schema via guided decoding; StructuredOutputError after max_attempts."""
    js = schema.model_json_schema()
    defs = js.get("$defs", {})
    try:
        check_supported(js, defs)
    except UnsupportedSchema:

        async def gen(msgs: list[Message], p: GenParams) -> str:
            return (await model.chat(msgs, p)).text

        return await structured_by_reasking(gen, messages, schema, params, max_attempts)
    prompt = model.prompt_text(guided_messages(messages, js, defs))
    base_seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
    reasons: list[str] = []
    for attempt in range(max(1, max_attempts)):
        temp = params.temperature if (attempt == 0 or params.temperature > 0) else RETRY_TEMPERATURE
        guide = _Guide(model, prompt, temp, params.top_p, base_seed + attempt, params.max_tokens)
        try:
            await guide.value(js, defs)
            text = guide.out.strip()
            return schema.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"]) or "(root)"
            reasons.append(f"{loc}: {first['msg']}")
        except GuideError as e:
            reasons.append(str(e))
    raise StructuredOutputError(schema.__name__, max(1, max_attempts), reasons)
