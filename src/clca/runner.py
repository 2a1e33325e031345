"""Run many async items concurrently with a bound, a progress bar, and failure accounting.

Every stage uses `run_items`: each item is skipped when already done, processed under a
concurrency limit, stored by the item function itself, and failures are counted by reason.
Exceptions that are not item failures (KeyboardInterrupt, programming errors) propagate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from tqdm.auto import tqdm

from .errors import ClcaError
from .failures import failure_group, failure_reason

I = TypeVar("I")  # noqa: E741

#: the stride between the seeds of successive attempts at one item: attempt k of an item seeded s uses
#: s + RETRY_SEED_STRIDE * k. A retry must draw a new sample; a large prime keeps the attempts of one item
#: clear of the seeds of the items next to it (items are seeded s, s+1, ... or by hashes).
RETRY_SEED_STRIDE = 7919


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of an item's attempt number `attempt` (0: the item's own seed)."""
    return seed + RETRY_SEED_STRIDE * attempt


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None  # the reason of the first model error raised to the runner (with any hint)

    def line(self, what: str) -> str:
        s = f"{what}: {self.ok} done, {self.skipped} already done, {self.failed} failed"
        if self.reasons:
            s += " (" + ", ".join(f"{r}: {n}" for r, n in self.reasons.most_common()) + ")"
        return s


async def run_items(
    items: Iterable[I],
    fn: Callable[[I], Awaitable[bool]],
    *,
    is_done: Callable[[I], bool] = lambda _i: False,
    concurrency: int = 32,
    desc: str = "items",
    progress: bool = True,
    on_error: Callable[[I, ClcaError], None] | None = None,
) -> RunSummary:
    """Apply fn to every item not yet done. fn returns True on success, False on a recorded failure.

    Work is bounded: `concurrency` workers pull items one at a time, so at most that many are in
    flight and queued items cost no more than the iterable itself (a generator stays lazy).
    A ClcaError raised by fn (a backend error after its retries, an HTTP 401, ...) also counts as a
    failure: `on_error(item, error)` records it (the stage writes its `failed` row, see
    clca.failures.failure_reason), and the summary counts it under its group (`HTTP 401`, class name).
    Any other exception stops the workers and propagates.
    """
    total = len(items) if isinstance(items, Sized) else None
    summary = RunSummary(total=total or 0)
    it: Iterator[I] = iter(items)
    # until the first result the bar says so and shows no rate: that wait is mostly loading the model (or
    # reaching the server), and counting it into the rate made the first ETA hours for a minutes-long job
    waiting = f"{desc} (waiting for the model: loading it or reaching its server)"
    bar = tqdm(total=total, desc=waiting, disable=not progress, leave=False)
    first = True

    def done_one() -> None:
        nonlocal first
        if first:
            first = False
            start_clock(bar, desc)
        bar.update(1)

    async def worker() -> None:
        for item in it:  # shared iterator: each item goes to exactly one worker
            if is_done(item):
                summary.skipped += 1
                bar.update(1)
                continue
            try:
                ok = await fn(item)
            except ClcaError as e:
                ok = False
                summary.reasons[failure_group(e)] += 1
                if summary.first_error is None:
                    summary.first_error = failure_reason(e)
                if on_error is not None:
                    on_error(item, e)
            if ok:
                summary.ok += 1
            else:
                summary.failed += 1
            done_one()

    try:
        async with _Group() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(worker())
    finally:
        bar.close()
    if total is None:
        summary.total = summary.ok + summary.failed + summary.skipped
    return summary


class StageSettings(Protocol):
    """What `run_stage` reads of a stage's config."""

    concurrency: int
    progress: bool


async def run_stage(
    items: Iterable[I],
    fn: Callable[[I], Awaitable[bool]],
    cfg: StageSettings,
    *,
    is_done: Callable[[I], bool],
    desc: str,
    reasons: Mapping[str, int] | None = None,
    on_error: Callable[[I, ClcaError], None] | None = None,
) -> RunSummary:
    """`run_items` with a stage config's concurrency and progress bar; `reasons` (the failures the stage
    recorded itself, by reason) are added to the summary when the run ends."""
    summary = await run_items(
        items, fn, is_done=is_done, concurrency=cfg.concurrency, desc=desc, progress=cfg.progress, on_error=on_error
    )
    summary.reasons.update(reasons or {})
    return summary


def start_clock(bar: tqdm, desc: str) -> None:  # type: ignore[type-arg]
    """Restart the bar's clock and rate at its current count (items skipped as already done and the wait for
    the first result are not in the rate), with its plain description."""
    n = bar.n
    bar.set_description_str(desc, refresh=False)
    bar.reset(total=bar.total)
    bar.n = bar.last_print_n = n
    bar.refresh()


class _Group:
    """Run tasks together; on the first error cancel the others and re-raise that error."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def create_task(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def __aenter__(self) -> _Group:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.gather(*self._tasks)
        except BaseException:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
