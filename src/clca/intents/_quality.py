"""Measured dialogue quality, per culture and in total, from the run database.

- echo_share: content turns whose argument fails the echo checks (clca.echo) against its own prompt,
  the earlier arguments and the last turn, re-checked on the stored turns;
- words_per_turn: mean words per content turn (speak, non-verbal communication, action);
- distinct_2: distinct word bigrams / all word bigrams over the arguments (1 = no bigram repeats);
- names_share: characters of adapted and norm-based scenarios whose names are plausible for the culture
  by Faker's name data (characters of cultures without Faker names are not counted);
- keep_rate: kept / judged dialogues under the discard rule.
All over ok episodes (failed ones are never used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..culture import Culture, culture_in_run
from ..echo import echo_problem, prompt_grams, tokens
from ..errors import DataError
from ..judge import DiscardRule, discard_reasons
from ..records import EPISODE, JUDGEMENT, SCENARIO, TURN, key_head
from ..roleplay import (
    CONTENT_ACTIONS,
    Turn,
    agent_messages,
    culture_profile,
    parse_scenario,
    split_episode_key,
    view,
)
from ..scenarios import Scenario, culture_locales, name_problem
from ..store import RunStore

_FIELDS = ("turns", "echo_turns", "words", "bigrams", "distinct", "characters", "plausible", "judged", "kept")


def _empty() -> dict[str, Any]:
    return {k: 0 for k in _FIELDS} | {"_bigrams": set()}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _finish(b: dict[str, Any]) -> dict[str, Any]:
    return {
        "content_turns": b["turns"],
        "echo_turns": b["echo_turns"],
        "echo_share": _ratio(b["echo_turns"], b["turns"]),
        "words_per_turn": _ratio(b["words"], b["turns"]),
        "distinct_2": _ratio(len(b["_bigrams"]), b["bigrams"]),
        "characters_checked": b["characters"],
        "names_plausible": b["plausible"],
        "names_share": _ratio(b["plausible"], b["characters"]),
        "judged": b["judged"],
        "kept": b["kept"],
        "keep_rate": _ratio(b["kept"], b["judged"]),
    }


def _ask_of(decoding: str | None, action_type: str) -> str:
    return action_type if decoding == "freetext" else "structured"


def echo_turns(
    scenario: Scenario,
    turns: Sequence[Turn],
    profiles: dict[str | None, str] | None = None,
    culture: Culture | None = None,
) -> list[int]:
    """Indices of the content turns of an episode that fail the echo checks (profiles: a per-culture cache;
    culture: the run's culture object for the scenario, custom profiles included)."""
    sv = view(scenario, culture)
    profiles = {} if profiles is None else profiles
    if sv.culture not in profiles:
        profiles[sv.culture] = culture_profile(culture if culture is not None else sv.culture)
    grams: dict[tuple[int, str], frozenset[tuple[str, ...]]] = {}
    system: frozenset[tuple[str, ...]] | None = None  # the system prompt is the same for both sides
    bad: list[int] = []
    for i, t in enumerate(turns):
        if t.action_type not in CONTENT_ACTIONS:
            continue
        ask = _ask_of(t.decoding, t.action_type.value)
        if (t.agent, ask) not in grams:
            sys_msg, user_msg = agent_messages(sv, t.agent, [], profiles[sv.culture], ask)
            system = prompt_grams([sys_msg["content"]]) if system is None else system
            grams[(t.agent, ask)] = system | prompt_grams([user_msg["content"]])
        earlier = turns[:i]
        problem = echo_problem(
            t.argument,
            grams=grams[(t.agent, ask)],
            previous=[e.argument for e in earlier if e.action_type in CONTENT_ACTIONS],
            last=earlier[-1].argument if earlier else None,
        )
        if problem is not None:
            bad.append(t.idx)
    return bad


def _turns_by_episode(store: RunStore) -> dict[str, list[Turn]]:
    """The contiguous stored turns 0..n-1 of every episode, read in one pass."""
    by: dict[str, list[Turn]] = {}
    for rec in store.iter(TURN):
        if rec.parent is not None:
            by.setdefault(rec.parent, []).append(Turn.model_validate(rec.data))
    out: dict[str, list[Turn]] = {}
    for key, turns in by.items():
        turns.sort(key=lambda t: t.idx)
        out[key] = [t for i, t in enumerate(turns) if all(u.idx == j for j, u in enumerate(turns[: i + 1]))]
    return out


def dialogue_quality(store: RunStore, rule: DiscardRule | None = None) -> dict[str, Any]:
    """{"cultures": {code: figures}, "total": figures} (figures described in the module docstring)."""
    per: dict[str, dict[str, Any]] = {}
    total = _empty()

    def add(culture: str, field: str, n: int) -> None:
        per.setdefault(culture, _empty())[field] += n
        total[field] += n

    reasons = discard_reasons(store, rule)
    profiles: dict[str | None, str] = {}
    judged = {r.key for r in store.iter(JUDGEMENT, status=None) if r.data and "meta" in r.data}
    scenarios = {r.key: r.data for r in store.iter(SCENARIO)}
    all_turns = _turns_by_episode(store)
    for r in store.iter(EPISODE):
        culture = (r.data or {}).get("culture") or key_head(r.key)
        per.setdefault(culture, _empty())
        turns = all_turns.get(r.key, [])
        sc_data = scenarios.get(split_episode_key(r.key)[0])
        if sc_data is None:
            raise DataError(f"{store.path}: episode {r.key!r} refers to a missing scenario")
        content = [t for t in turns if t.action_type in CONTENT_ACTIONS]
        add(culture, "turns", len(content))
        scenario = parse_scenario(sc_data)
        obj = culture_in_run(store, scenario.culture) if scenario.culture else None
        add(culture, "echo_turns", len(echo_turns(scenario, turns, profiles, obj)))
        add(culture, "words", sum(t.words() for t in content))
        for t in content:
            toks = tokens(t.argument)
            grams = list(zip(toks, toks[1:], strict=False))
            add(culture, "bigrams", len(grams))
            per[culture]["_bigrams"].update(grams)
            total["_bigrams"].update(grams)
        if r.key in judged:
            add(culture, "judged", 1)
            add(culture, "kept", int(reasons.get(r.key, "dropped") is None))
    for data in scenarios.values():
        sc = parse_scenario(data)
        if sc.provenance.kind not in ("adapted", "norm") or not culture_locales(sc.culture):
            continue
        assert sc.culture is not None
        for c in sc.characters:
            add(sc.culture, "characters", 1)
            add(sc.culture, "plausible", int(name_problem(c.first_name, c.last_name, c.gender, sc.culture) is None))
    return {"cultures": {c: _finish(b) for c, b in sorted(per.items())}, "total": _finish(total)}


def quality_line(q: dict[str, Any]) -> str:
    """The figures of one bucket as a short stage-line text."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    return (
        f"echo turns {q['echo_turns']}/{q['content_turns']}, {num(q['words_per_turn'], '.1f')} words/turn, "
        f"distinct-2 {num(q['distinct_2'], '.2f')}, culture names {pct(q['names_share'])}"
        + (f", kept {pct(q['keep_rate'])} of judged" if q["judged"] else "")
    )
