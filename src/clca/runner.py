"""Run many async items concurrently with a bound, a progress bar, and failure accounting.

Every stage uses `run_items`: each item is skipped when already done, processed under a
concurrency limit, stored by the item function itself, and failures are counted by reason.
Exceptions that are not item failures (KeyboardInterrupt, programming errors) propagate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from tqdm.auto import tqdm

from .errors import ClcaError

I = TypeVar("I")  # noqa: E741


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

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
) -> RunSummary:
    """Apply fn to every item not yet done. fn returns True on success, False on a recorded failure.

    A ClcaError raised by fn also counts as a failure (the caller's fn should record it in the
    store first); any other exception cancels the remaining items and propagates.
    """
    todo = list(items)
    summary = RunSummary(total=len(todo))
    pending = [i for i in todo if not is_done(i)]
    summary.skipped = len(todo) - len(pending)
    sem = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(todo), initial=summary.skipped, desc=desc, disable=not progress, leave=False)

    async def one(item: I) -> None:
        async with sem:
            try:
                ok = await fn(item)
            except ClcaError as e:
                ok = False
                summary.reasons[type(e).__name__] += 1
            if ok:
                summary.ok += 1
            else:
                summary.failed += 1
            bar.update(1)

    try:
        await asyncio.gather(*(one(i) for i in pending))
    finally:
        bar.close()
    return summary
