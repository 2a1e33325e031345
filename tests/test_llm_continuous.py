"""Continuous batching on the real embedded model: rows that join a running decoding batch, or leave it
because their caller is gone, change nothing for the other rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clca.llm.engine import GenOut, GenRow


def _prompt(llm: Any, text: str) -> list[int]:
    return llm.encode(llm.prompt_text([{"role": "user", "content": text}]))


def _rows(llm: Any) -> list[GenRow]:
    a = _prompt(llm, "Tell me about Osaka.")
    b = _prompt(llm, "Write a haiku about the sea and the moon in autumn, please, in English.")
    c = _prompt(llm, "Hi")
    return [
        GenRow(a, 6),
        GenRow(b, 5, top_logprobs=2),
        GenRow(c, 4),
        GenRow(a, 5, temperature=0.9, top_p=0.9, seed=7),
    ]


def _decode_joining(eng: Any, rows: list[GenRow], first: int, schedule: dict[int, list[int]]) -> dict[int, GenOut]:
    """Decode rows[first]; rows schedule[k] join before decoding step k+1."""
    outs: dict[int, GenOut] = {}
    steps = [0]

    def admit(live: int) -> list[tuple[Any, GenRow]]:
        steps[0] += 1
        return [(i, rows[i]) for i in schedule.get(steps[0], [])]

    eng.decode([(first, rows[first])], outs.update, admit)
    return outs


@pytest.mark.slow
def test_rows_joining_a_running_batch_decode_as_they_would_alone(embedded_llm: Any) -> None:
    eng = embedded_llm.engine
    rows = _rows(embedded_llm)
    alone = [eng.generate([r])[0] for r in rows]
    for first, schedule in (
        (1, {1: [2], 2: [0, 3]}),  # a long prompt first, shorter ones join (left-padded to its width)
        (2, {2: [1], 3: [3, 0]}),  # a short prompt first, longer ones join (the running row moves right)
    ):
        joined0 = eng.stats.gen_rows
        outs = _decode_joining(eng, rows, first, schedule)
        assert eng.stats.gen_rows - joined0 == 4
        for i, ref in enumerate(alone):
            assert outs[i].token_ids == ref.token_ids, (first, i)
            assert outs[i].finish_reason == ref.finish_reason
        for got, ref in zip(outs[1].logprobs or [], alone[1].logprobs or [], strict=True):
            assert got.token == ref.token
            assert abs(got.logprob - ref.logprob) < 1e-5


@pytest.mark.slow
def test_a_cancelled_row_leaves_the_batch_and_the_others_are_unchanged(embedded_llm: Any) -> None:
    eng = embedded_llm.engine
    prompt = _prompt(embedded_llm, "Tell me a long story about a cat.")
    short, medium, long = (
        {"max_tokens": 3, "ignore_eos": True},
        {"max_tokens": 40, "ignore_eos": True},
        {"max_tokens": 80, "ignore_eos": True},
    )

    async def uncancelled() -> list[Any]:
        return list(await asyncio.gather(*(embedded_llm.generate_ids(prompt, [r]) for r in (short, medium, long))))

    ref = [o[0] for o in asyncio.run(uncancelled())]
    assert len(ref[2].token_ids) == 80

    async def cancelled() -> tuple[list[Any], int]:
        long_task = asyncio.ensure_future(embedded_llm.generate_ids(prompt, [long]))
        others = [asyncio.ensure_future(embedded_llm.generate_ids(prompt, [r])) for r in (short, medium)]
        first = await others[0]  # the short row is done: the long one is mid-way
        long_task.cancel()
        await asyncio.wait([long_task])  # the cancellation has reached the queued row's future
        at_cancel = eng.stats.decode_steps
        return [first, await others[1]], at_cancel

    st0 = eng.stats.copy()
    (got_short, got_medium), at_cancel = asyncio.run(cancelled())
    st = eng.stats.minus(st0)
    assert st.cancelled_rows == 1
    # every step decoded the rows still in it: the long row's steps are the rest once the other two are counted
    long_steps = st.decode_row_steps - 3 - 40
    assert long_steps < 40  # it left before the medium row finished, not at its own 80 tokens
    assert long_steps <= at_cancel - st0.decode_steps + 1  # within a step of its cancellation
    assert got_short[0].token_ids == ref[0].token_ids
    assert got_medium[0].token_ids == ref[1].token_ids
