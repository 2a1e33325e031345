"""Helpers of the reliability tests (no tests here): a scripted model whose every structured answer is
valid for the JSON schema it is asked for, and a checker that every ok artifact in a run is complete."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from typing import Any

from clca.llm import GenParams, Message, MockLLM
from clca.llm.structured._jsonschema import alternatives, resolve, split_null
from clca.store import RunStore

_WORDS = (
    "harbor lantern maple orchid copper willow meadow river falcon cedar amber summit tulip garnet "
    "breeze canyon ember glacier hazel juniper kestrel lotus marble nectar opal pepper quartz saffron"
).split()
_SCHEMA_MARK = "matching this JSON schema:\n"


def _rng(messages: Sequence[Message], params: GenParams) -> random.Random:
    blob = json.dumps([list(messages), params.seed], sort_keys=True, default=str)
    return random.Random(hashlib.sha256(blob.encode()).hexdigest())


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def synth(node: dict[str, Any], root: dict[str, Any], rng: random.Random, payload: str, field: str = "") -> Any:
    """A random value valid for a JSON-schema node (the subset pydantic emits)."""
    node = resolve(node, root)
    if (alts := alternatives(node)) is not None:
        options, _ = split_null([resolve(o, root) for o in alts])
        return synth((options or alts)[0], root, rng, payload, field)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"]) if field != "action_type" else "speak"
    kind = node.get("type", "object")
    if kind == "object":
        props = node.get("properties", {})
        return {k: synth(v, root, rng, payload, k) for k, v in props.items()}
    if kind == "array":
        n = max(int(node.get("minItems", 1)), 1)
        n = min(n, int(node.get("maxItems", n)))
        return [synth(node.get("items", {"type": "string"}), root, rng, payload, field) for _ in range(n)]
    if kind == "integer":
        lo, hi = int(node.get("minimum", 0)), int(node.get("maximum", 100))
        if field == "age":
            lo, hi = max(lo, 20), min(hi, 70)
        return rng.randint(lo, hi)
    if kind == "number":
        return float(node.get("minimum", 0.5))
    if kind == "boolean":
        return rng.random() < 0.5
    # strings: distinct random words (new names, goals that differ), bounded by maxLength
    text = (_words(rng, 1).title() + rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou")) if "name" in field else ""
    if not text:
        text = f"{_words(rng, 6)} {payload}".strip()
    lim = int(node.get("maxLength", 10_000))
    return text[:lim].strip() or "x"


def schema_responder(payload: str = "") -> Any:
    """A MockLLM responder: valid JSON for the schema in the last user message, else an option number."""

    def respond(messages: Sequence[Message], params: GenParams) -> str:
        rng = _rng(messages, params)
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        i = last_user.rfind(_SCHEMA_MARK)
        if i < 0:  # a survey question in generate mode: answer with an option number
            return str(rng.randint(1, 3))
        schema = json.loads(last_user[i + len(_SCHEMA_MARK) :].strip())
        return json.dumps(synth(schema, schema, rng, payload))

    return respond


def schema_mock(payload: str = "", model_id: str = "mock-teacher") -> MockLLM:
    return MockLLM(schema_responder(payload), model_id=model_id)


# -- the invariant: no stage stores an empty or truncated artifact as valid -------------------------
def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_artifacts(store: RunStore) -> dict[str, int]:
    """Assert every ok artifact of every kind is complete; returns ok counts per kind checked."""
    counts: dict[str, int] = {}
    problems: list[str] = []

    def bad(kind: str, key: str, what: str) -> None:
        problems.append(f"{kind} {key}: {what}")

    for kind in store.kinds():
        for r in store.iter(kind, status="ok"):
            counts[kind] = counts.get(kind, 0) + 1
            d = r.data
            if not isinstance(d, dict) or not d:
                bad(kind, r.key, "empty data")
                continue
            if kind == "scenario":
                if not _nonempty(d.get("setting")) or len(d.get("characters", [])) != 2:
                    bad(kind, r.key, "no setting or not two characters")
                for c in d.get("characters", []):
                    for f in ("first_name", "last_name", "occupation", "public_info", "secret", "goal"):
                        if not _nonempty(c.get(f)):
                            bad(kind, r.key, f"character field {f} empty")
            elif kind == "episode":
                if not d.get("end_reason") or int(d.get("n_turns", 0)) < 1:
                    bad(kind, r.key, "no end reason or no turns")
                n_turns = sum(1 for _ in store.iter("turn", parent=r.key))
                if n_turns != d["n_turns"]:
                    bad(kind, r.key, f"n_turns {d['n_turns']} but {n_turns} turns stored")
            elif kind == "turn":
                if d.get("action_type") in ("speak", "non-verbal communication", "action") and not _nonempty(
                    d.get("argument")
                ):
                    bad(kind, r.key, "content action with an empty argument")
                if r.parent is None or not r.key.startswith(r.parent + "/t"):
                    bad(kind, r.key, f"parent {r.parent!r} does not match the key")
            elif kind == "judgement":
                if not store.done("episode", r.key):
                    bad(kind, r.key, "judgement of an episode that is not ok")
                if "culture" in d and isinstance(d["culture"], dict) and not _nonempty(d["culture"].get("reasoning")):
                    bad(kind, r.key, "empty reasoning")
            elif kind == "intention":
                if not _nonempty(d.get("intention")) or d.get("label") not in ("cultural", "generic"):
                    bad(kind, r.key, "empty intention or bad label")
                if (d.get("label") == "cultural") != _nonempty(d.get("cultural_reason")):
                    bad(kind, r.key, "cultural label without a reason (or the reverse)")
                if not store.done("turn", r.key):
                    bad(kind, r.key, "intention of a turn that is not ok")
            elif kind == "survey_answer":
                probs = d.get("probs") or []
                total = sum(probs) + float(d.get("safeguarded", 0.0))
                if len(probs) != len(d.get("codes", [])) or not math.isclose(total, 1.0, abs_tol=1e-6):
                    bad(kind, r.key, f"answer shares sum to {total}, not 1")
                if any(p < 0 for p in probs):
                    bad(kind, r.key, "negative share")
            elif kind == "metric":
                for k, v in d.items():
                    if isinstance(v, float) and math.isnan(v):
                        bad(kind, r.key, f"{k} is NaN")
        for r in store.iter(kind, status="failed"):
            if not _nonempty(r.error):
                bad(kind, r.key, "failed without a reason")
    assert not problems, "\n".join(problems[:20])
    return counts
