"""The radix prefix cache on the real embedded model: the same greedy replies and option probabilities
with and without it, whatever order the requests of two role-play sides arrive in."""

from __future__ import annotations

import asyncio
import weakref
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


def _chunk_kv_spy(eng: Any) -> tuple[list[int], Any]:
    """Wrap the engine's prefill batches: before each, how many earlier batches' KV tensors are still alive."""
    real, refs, alive = eng._prefill_batch, [], []

    def spy(items: Any) -> Any:
        alive.append(len({id(r()) for r in refs if r() is not None}))
        res = real(items)
        refs.extend(weakref.ref(st[0][-1][0][0].untyped_storage()) for st, _ in res)  # layer 0 keys of the chunk
        return res

    return alive, spy


@pytest.mark.slow
def test_a_scoring_call_holds_one_chunk_of_kv_at_a_time(embedded_llm: Any) -> None:
    """Scoring reads distributions only: a prefill chunk's KV is let go before the next chunk is computed
    (where no repeated prompt needs it), with the same log-probabilities as scoring each prompt alone;
    computing prompt states for generation keeps every chunk's KV (the rows decode from it)."""
    from clca.llm.engine import ScoreJob

    eng, tok = embedded_llm.engine, embedded_llm.tokenizer
    body = list(tok(SYSTEM * 9, add_special_tokens=False)["input_ids"])
    prompts = [list(tok(f"Case {n}.", add_special_tokens=False)["input_ids"]) + body for n in (11, 22, 33, 44)]
    conts = [list(tok(o, add_special_tokens=False)["input_ids"]) + [13] for o in OPTIONS]  # 2+ tokens each
    jobs = [ScoreJob(p, conts) for p in prompts]
    saved = eng._prefix_cache
    try:
        eng._prefix_cache = PrefixCache(0)  # every prompt computed here, nothing copied into a cache
        alone = [eng.score([job])[0] for job in jobs]
        alive, eng._prefill_batch = _chunk_kv_spy(eng)
        together = eng.score(jobs)
        scoring_alive = list(alive)
        alive.clear()
        eng.prompt_states(prompts)
        generation_alive = list(alive)
        alive.clear()
        repeat = ScoreJob(prompts[0], conts[:2])  # the same prompt again, other continuations: read from its KV
        with_repeat = eng.score([*jobs, repeat])
    finally:
        eng._prefix_cache = saved
        del eng._prefill_batch  # the class's method again
    assert len(scoring_alive) >= 2, "the prompts were meant to take two or more chunks"
    assert scoring_alive == [0] * len(scoring_alive)
    assert generation_alive[1:] and all(n > 0 for n in generation_alive[1:])

    def logprobs(per_job: Any) -> list[float]:
        return [t.logprob for conts_ in per_job for toks in conts_ for t in toks]

    reference = logprobs(alone)
    for got in (logprobs(together), logprobs(with_repeat[:4])):
        assert len(got) == len(reference) and max(abs(x - y) for x, y in zip(got, reference, strict=True)) < 1e-4
    again, first = logprobs([with_repeat[4]]), logprobs([alone[0][:2]])
    assert len(again) == len(first) and max(abs(x - y) for x, y in zip(again, first, strict=True)) < 1e-4
