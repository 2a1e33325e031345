"""The engine's memory budget (`_budget.py`): the split, the default, and batches bounded by it on the real model;
and the per-stage peak (`clca.memory.StagePeak`)."""

from __future__ import annotations

import asyncio
import mmap

import pytest

from clca.errors import ModelStringError
from clca.llm import load_model
from clca.llm.engine._budget import MB, plan_budget
from clca.memory import StagePeak, rss_bytes

PER_TOKEN = 46080  # the embedded model's KV bytes per token (float32)


def test_budget_split_and_tokens() -> None:
    b = plan_budget(100, None, PER_TOKEN, 500 * MB)
    assert (b.kv_bytes, b.prefix_bytes) == (100 * MB, 50 * MB)
    assert b.batch_tokens == 50 * MB // (2 * PER_TOKEN)
    off = plan_budget(100, 0, PER_TOKEN, 500 * MB)  # no prefix cache: the batches get it all
    assert off.prefix_bytes == 0 and off.batch_tokens == 100 * MB // (2 * PER_TOKEN)
    assert plan_budget(100, 10, PER_TOKEN, 500 * MB).prefix_bytes == 10 * MB
    assert "max_kv_mb" in b.line() and "prefix cache 50 MB" in b.line()


def test_default_budget_follows_the_model_and_the_machine() -> None:
    small = plan_budget(None, None, PER_TOKEN, 100 * MB)  # a tiny model: the floor
    big = plan_budget(None, None, PER_TOKEN, 2000 * MB)  # its weights' size, or a quarter of what is free
    import psutil

    quarter = psutil.virtual_memory().available / 4
    assert small.kv_bytes == pytest.approx(min(quarter, 512 * MB), rel=0.05)
    assert big.kv_bytes == pytest.approx(min(quarter, 2000 * MB), rel=0.05)
    assert "default" in big.source


def test_bad_budget_option_is_one_line() -> None:
    with pytest.raises(ModelStringError, match="option max_kv_mb"):
        load_model("embedded?max_kv_mb=0", cache=False)


def test_stage_peak_sees_the_stage_and_not_the_earlier_peak() -> None:
    # an anonymous mapping of its own: fresh pages from the OS, resident once touched and returned at close,
    # whatever the heap already holds (a numpy block can reuse freed heap pages the worker already has resident)
    with StagePeak() as big:
        block = mmap.mmap(-1, 40 * MB)
        for offset in range(0, 40 * MB, mmap.PAGESIZE):
            block[offset] = 1  # touched, held to the end of the stage (its exit reads the RSS while it is held)
    block.close()
    with StagePeak() as small:
        pass
    assert big.peak_bytes >= rss_bytes() + 30 * MB or big.peak_bytes - small.peak_bytes >= 30 * MB
    assert small.peak_bytes < big.peak_bytes


@pytest.mark.slow
def test_batches_split_to_fit_the_budget_and_decode_the_same() -> None:
    prompt = "Describe a polite greeting between two neighbours in Cairo, in detail. " * 12
    msgs = [[{"role": "user", "content": f"{prompt} ({i})"}] for i in range(6)]

    async def run(spec: str) -> tuple[list[str], int, int]:
        from clca.llm import GenParams

        llm = load_model(spec, cache=False)
        outs = await asyncio.gather(*(llm.chat(m, GenParams(max_tokens=12, temperature=0.0)) for m in msgs))
        b = llm.batcher  # type: ignore[attr-defined]
        res = [o.text for o in outs], b.stats.largest, b.max_batch_tokens
        await llm.aclose()
        return res

    free, free_largest, _ = asyncio.run(run("embedded?prefix_cache_mb=0"))
    tight, tight_largest, tokens = asyncio.run(run("embedded?prefix_cache_mb=0&max_kv_mb=30"))
    assert tokens == 30 * MB // (2 * PER_TOKEN)  # 341 tokens: two rows of about 150 at a time
    assert free_largest == 6 and tight_largest <= 2  # split to fit, not grown with the work
    assert tight == free  # the same greedy text, however the rows were batched
