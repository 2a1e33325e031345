"""The dynamic batcher's grouping, bounds and error delivery (fake workloads; no model)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from clca.llm.engine import Batcher


def _make(max_batch: int = 32, max_batch_tokens: int = 65536, fail: bool = False) -> tuple[Batcher, list[list[int]]]:
    seen: list[list[int]] = []
    gate = threading.Event()

    def setup() -> None:
        gate.set()

    def run_gen(rows: list[int]) -> list[int]:
        if fail:
            raise RuntimeError("boom")
        seen.append(list(rows))
        return [r * 10 for r in rows]

    def run_score(jobs: list[str]) -> list[str]:
        seen.append([-1] * len(jobs))
        return [j.upper() for j in jobs]

    return Batcher(setup, run_gen, run_score, max_batch=max_batch, max_batch_tokens=max_batch_tokens), seen


def test_concurrent_submissions_form_one_batch() -> None:
    b, seen = _make()

    async def main() -> list[list[int]]:
        return await asyncio.gather(*[b.submit_gen([i], [1]) for i in range(10)])

    out = asyncio.run(main())
    b.close()
    assert out == [[i * 10] for i in range(10)]
    assert seen == [list(range(10))]
    assert b.stats.largest == 10


def test_batch_size_and_token_bounds() -> None:
    b, seen = _make(max_batch=4)

    async def main() -> None:
        await asyncio.gather(*[b.submit_gen([i], [1]) for i in range(10)])

    asyncio.run(main())
    b.close()
    assert [len(s) for s in seen] == [4, 4, 2]

    b2, seen2 = _make(max_batch_tokens=250)

    async def main2() -> None:
        await asyncio.gather(*[b2.submit_gen([i], [100]) for i in range(5)])

    asyncio.run(main2())
    b2.close()
    assert [len(s) for s in seen2] == [2, 2, 1]


def test_multi_row_request_and_score_jobs() -> None:
    b, seen = _make()

    async def main() -> tuple[list[int], str, str]:
        rows = b.submit_gen([1, 2, 3], [1, 1, 1])
        return await asyncio.gather(rows, b.submit_score("a", 1), b.submit_score("b", 1))

    rows, a, bb = asyncio.run(main())
    b.close()
    assert rows == [10, 20, 30] and (a, bb) == ("A", "B")
    assert [1, 2, 3] in seen and [-1, -1] in seen  # the two scoring jobs ran as one batch


def test_worker_errors_reach_every_caller() -> None:
    b, _ = _make(fail=True)

    async def main() -> list[object]:
        return await asyncio.gather(*[b.submit_gen([i], [1]) for i in range(3)], return_exceptions=True)

    out = asyncio.run(main())
    b.close()
    assert all(isinstance(e, RuntimeError) and str(e) == "boom" for e in out)


def test_works_across_event_loops() -> None:
    b, _ = _make()
    assert asyncio.run(b.submit_gen([1], [1])) == [10]
    assert asyncio.run(b.submit_gen([2], [1])) == [20]
    b.close()
    with pytest.raises(ValueError):
        Batcher(lambda: None, lambda r: r, lambda r: r, max_batch=0)
