"""The radix prefix cache on the real embedded model: the same greedy replies and option probabilities
with and without it, whatever order the requests of two role-play sides arrive in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clca.llm import GenParams
from clca.llm.engine._radix import PrefixCache

SYSTEM = (
    "Two neighbours meet in the stairwell of their apartment building in Osaka late in the evening. "
    "One of them has been playing loud music for a week. Both are polite and want to stay on good terms. "
)
PRIVATE = (
    "You are Aiko. Your goal: ask for quieter evenings without offending. Your secret: you work night shifts.",
    "You are Kenji. Your goal: keep practising for a concert next week. Your secret: the concert is tomorrow.",
)
LINES = ["Good evening, Kenji-san.", "Ah, Aiko-san, good evening!", "About the music...", "I am so sorry."]
OPTIONS = [" speak", " leave", " none", " action"]


def _requests() -> list[list[dict[str, str]]]:
    """Turn t of side t % 2: shared system part, that side's private part, the transcript so far."""
    out = []
    for t in range(4):
        transcript = "\n".join(f"Turn {i}: {LINES[i]}" for i in range(t)) or "The conversation starts now."
        user = f"{PRIVATE[t % 2]}\n\n{transcript}\n\nIt is turn {t}. What do you do next?"
        out.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])
    return out


async def _one(llm: Any, msgs: list[dict[str, str]]) -> tuple[str, list[float]]:
    probs = await llm.score_options(msgs, OPTIONS)
    reply = await llm.chat(msgs, GenParams(max_tokens=6, temperature=0))
    return reply.texts[0], probs


async def _in_order(llm: Any, reqs: list[list[dict[str, str]]]) -> list[tuple[str, list[float]]]:
    return [await _one(llm, m) for m in reqs]


async def _together(llm: Any, reqs: list[list[dict[str, str]]]) -> list[tuple[str, list[float]]]:
    return list(await asyncio.gather(*(_one(llm, m) for m in reqs)))


@pytest.mark.slow
def test_same_outputs_with_and_without_the_cache_in_any_arrival_order(embedded_llm: Any) -> None:
    eng = embedded_llm.engine
    saved = eng._prefix_cache
    reqs = _requests()
    try:
        eng._prefix_cache = PrefixCache(0)  # no cache: every prompt computed in full
        reference = asyncio.run(_in_order(embedded_llm, reqs))
        runs = []
        for order, runner in (([0, 1, 2, 3], _in_order), ([3, 1, 2, 0], _in_order), ([2, 0, 3, 1], _together)):
            eng._prefix_cache = PrefixCache(256 * 2**20)
            hits0 = eng.prefix_hits
            got = asyncio.run(runner(embedded_llm, [reqs[i] for i in order]))
            runs.append((order, got, eng.prefix_hits - hits0))
    finally:
        eng._prefix_cache = saved
    for order, got, hits in runs:
        assert hits > 0  # the cache was used
        for i, (text, probs) in zip(order, got, strict=True):
            ref_text, ref_probs = reference[i]
            assert text == ref_text, (order, i)
            assert max(abs(a - b) for a, b in zip(probs, ref_probs, strict=True)) < 1e-5, (order, i)


@pytest.mark.slow
def test_prefill_log_records_the_computed_rows(embedded_llm: Any) -> None:
    """The benchmarks' same-work reference reads `prefill_log`: every computed row, with its reused tokens."""
    eng = embedded_llm.engine
    saved = eng._prefix_cache
    try:
        eng._prefix_cache = PrefixCache(256 * 2**20)
        eng.prefill_log, computed0 = [], eng.prefill_tokens
        asyncio.run(_in_order(embedded_llm, _requests()))
        log, eng.prefill_log = eng.prefill_log, None
    finally:
        eng._prefix_cache, eng.prefill_log = saved, None
    assert log and sum(len(p) - r for p, r in log) == eng.prefill_tokens - computed0
    assert any(r > 0 for _, r in log)  # later turns extend cached prefixes
    assert all(0 <= r < len(p) for p, r in log)
