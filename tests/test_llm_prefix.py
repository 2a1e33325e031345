"""Grouping of prompts by shared token prefixes (pure logic of the engine's prompt computation)."""

from __future__ import annotations

from clca.llm._prefix import MIN_PREFIX_REUSE, shared_prefix_groups

TEMPLATE = tuple(range(1000, 1100))  # a 100-token template all prompts start with


def _prompt(tag: int, length: int = 400) -> tuple[int, ...]:
    return TEMPLATE + tuple(tag * 10_000 + i for i in range(length))


def test_prompts_sharing_a_template_share_one_prefix_computation() -> None:
    # four role-play first turns: a common 100-token template, then 400 tokens of their own
    prompts = [_prompt(t) for t in (1, 2, 3, 4)]
    groups, alone = shared_prefix_groups(prompts)
    assert alone == []
    assert [(prefix, sorted(members)) for prefix, members in groups] == [(TEMPLATE, sorted(prompts))]


def test_a_long_shared_prefix_is_not_cut_short_by_a_weaker_match() -> None:
    a = _prompt(1)
    b = a[:-5] + (7, 7, 7, 7, 7)  # shares 495 tokens with a
    c = _prompt(2)  # shares only the 100-token template
    groups, alone = shared_prefix_groups([a, b, c])
    assert (a[:495], sorted([a, b])) in [(p, sorted(m)) for p, m in groups]
    assert c in alone


def test_short_or_no_shared_prefixes_are_not_grouped() -> None:
    short = tuple(range(MIN_PREFIX_REUSE - 1))
    x, y = short + (1, 2, 3), short + (4, 5, 6)
    groups, alone = shared_prefix_groups([x, y, (9, 9, 9)])
    assert groups == [] and sorted(alone) == sorted([x, y, (9, 9, 9)])
