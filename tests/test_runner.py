"""run_items: bounded in-flight work, lazy consumption, skip-done, failure accounting."""

from __future__ import annotations

import asyncio

import pytest

from clca.errors import BackendError
from clca.runner import run_items


def test_bounded_in_flight_and_counts() -> None:
    in_flight = 0
    peak = 0

    async def fn(i: int) -> bool:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)  # yield to the loop so other workers can start
        in_flight -= 1
        if i % 10 == 3:
            raise BackendError("server said no")
        return i % 10 != 7

    s = asyncio.run(run_items(range(1000), fn, is_done=lambda i: i < 100, concurrency=8, progress=False))
    assert peak == 8
    assert (s.total, s.skipped) == (1000, 100)
    assert s.failed == 180 and s.ok == 720
    assert s.reasons["BackendError"] == 90


def test_generator_is_consumed_lazily() -> None:
    produced = 0
    max_ahead = 0
    done = 0

    def gen():
        nonlocal produced, max_ahead
        for i in range(10_000):
            produced += 1
            max_ahead = max(max_ahead, produced - done)
            yield i

    async def fn(i: int) -> bool:
        nonlocal done
        await asyncio.sleep(0)
        done += 1
        return True

    s = asyncio.run(run_items(gen(), fn, concurrency=16, progress=False))
    assert s.ok == 10_000 and s.total == 10_000
    assert max_ahead <= 16  # never more than the workers hold


def test_programming_error_propagates_and_stops() -> None:
    async def fn(i: int) -> bool:
        if i == 5:
            raise KeyError("bug")
        await asyncio.sleep(0)
        return True

    with pytest.raises(KeyError):
        asyncio.run(run_items(range(100), fn, concurrency=4, progress=False))
