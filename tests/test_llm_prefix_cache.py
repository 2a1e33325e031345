"""The engine's prompt-prefix cache as plain book-keeping (states are opaque here)."""

from __future__ import annotations

from clca.llm._prefix_cache import PrefixCache


def test_lookup_best_prefix_and_lru_bound_in_tokens() -> None:
    c = PrefixCache(max_tokens=10)
    c.remember((1, 2, 3), ("kv-a", "lg-a"))
    c.remember((7, 8, 9, 10), ("kv-b", "lg-b"))
    assert c.get((1, 2, 3)) == ("kv-a", "lg-a") and c.get((1, 2)) is None
    assert c.best_prefix((1, 2, 3, 4, 5)) == (3, (1, 2, 3))
    assert c.best_prefix((1, 2, 3)) == (2, (1, 2, 3))  # at least one token is left to compute
    c.remember((20, 21, 22, 23), ("kv-c", "lg-c"))  # 11 tokens > 10: the least recently used entry goes
    assert list(c) == [(1, 2, 3), (20, 21, 22, 23)]  # (1, 2, 3) was used by get(), so (7, ...) went
    c.remember(tuple(range(11)), ("too", "long"))  # longer than the whole budget: not kept
    assert len(c) == 2


def test_an_extended_prompt_replaces_its_prefixes() -> None:
    c = PrefixCache(max_tokens=100)
    c.remember((1, 2), ("a", 0))
    c.remember((5, 6, 7), ("b", 0))
    c.remember((5, 6, 7, 8), ("c", 0), extends=(5, 6, 7))
    c.remember((1, 2, 3), ("d", 0))
    assert list(c) == [(5, 6, 7, 8), (1, 2, 3)] and c[(1, 2, 3)] == ("d", 0)
    c.clear()
    assert len(c) == 0 and not c


def test_a_zero_budget_keeps_nothing() -> None:
    c = PrefixCache(max_tokens=0)
    c.remember((1, 2, 3), ("a", 0))
    assert len(c) == 0 and c.best_prefix((1, 2, 3, 4)) == (0, None)
