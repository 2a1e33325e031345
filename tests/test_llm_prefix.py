"""Planning the computation of prompts that share token prefixes (pure logic of the engine's prompt states)."""

from __future__ import annotations

from clca.llm.engine._prefix import MIN_PREFIX_REUSE, Step, prefix_plan

TEMPLATE = tuple(range(1000, 1100))  # a 100-token template all prompts start with


def _prompt(tag: int, length: int = 400) -> tuple[int, ...]:
    return TEMPLATE + tuple(tag * 10_000 + i for i in range(length))


def _computed(levels: list[list[Step]]) -> int:
    """Tokens the plan computes: each step's key beyond its parent."""
    return sum(len(s.key) - (len(s.parent) if s.parent else 0) for level in levels for s in level)


def test_prompts_sharing_a_template_share_one_prefix_computation() -> None:
    # four role-play first turns: a common 100-token template, then 400 tokens of their own
    prompts = [_prompt(t) for t in (1, 2, 3, 4)]
    levels = prefix_plan(prompts)
    assert levels == [[Step(TEMPLATE, None)], [Step(p, TEMPLATE) for p in sorted(prompts)]]
    assert _computed(levels) == 100 + 4 * 400


def test_nested_shared_prefixes_are_each_computed_once() -> None:
    # two personas (a shared template, then 50 tokens each), under each three items sharing a 30-token stem
    personas = [TEMPLATE + tuple(range(p * 100, p * 100 + 50)) for p in (20, 30)]
    stems = [persona + tuple(range(7000, 7030)) for persona in personas]
    items = [stem + (9000 + i, 9100 + i) for stem in stems for i in range(3)]
    lone = personas[0] + (5,) * 10  # shares only the first persona with the others
    levels = prefix_plan([*items, lone])
    steps = {s.key: s.parent for level in levels for s in level}
    assert steps[TEMPLATE] is None
    assert steps[personas[0]] == TEMPLATE  # branches: its stem and the lone prompt
    assert personas[1] not in steps  # nothing branches there: its stem is the next shared prefix
    assert steps[stems[0]] == personas[0] and steps[stems[1]] == TEMPLATE
    assert steps[lone] == personas[0]
    assert all(steps[it] == stems[k // 3] for k, it in enumerate(items))
    # every distinct token of the prompts' trie computed exactly once
    trie = {k[:n] for k in [*items, lone] for n in range(1, len(k) + 1)}
    assert _computed(levels) == len(trie)
    # parents are always computed at an earlier level
    level_of = {s.key: i for i, level in enumerate(levels) for s in level}
    assert all(level_of[s.parent] < i for i, level in enumerate(levels) for s in level if s.parent)


def test_a_long_shared_prefix_is_not_cut_short_by_a_weaker_match() -> None:
    a = _prompt(1)
    b = a[:-5] + (7, 7, 7, 7, 7)  # shares 495 tokens with a
    c = _prompt(2)  # shares only the 100-token template
    steps = {s.key: s.parent for level in prefix_plan([a, b, c]) for s in level}
    assert steps[a] == a[:495] and steps[b] == a[:495] and steps[a[:495]] == TEMPLATE and steps[c] == TEMPLATE


def test_short_or_no_shared_prefixes_are_not_grouped() -> None:
    short = tuple(range(MIN_PREFIX_REUSE - 1))
    x, y = short + (1, 2, 3), short + (4, 5, 6)
    assert prefix_plan([x, y, (9, 9, 9)]) == [[Step(k, None) for k in sorted([x, y, (9, 9, 9)])]]


def test_every_prompt_keeps_a_token_of_its_own() -> None:
    a = _prompt(1)
    levels = prefix_plan([a, a[:-1], a[:-2]])  # each a prefix of the next
    steps = {s.key: s.parent for level in levels for s in level}
    assert set(steps) >= {a, a[:-1], a[:-2]}
    assert all(len(k) > len(p) for k, p in steps.items() if p)
