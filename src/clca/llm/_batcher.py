"""Dynamic batching: coroutines submit work; one worker thread runs everything queued as one batch.

How requests get grouped:
  * A coroutine's submission is parked in a per-event-loop list, and a flush is scheduled with
    `loop.call_soon`. Coroutines started together (asyncio.gather) all run their first step before
    the flush runs, so they reach the worker as one group, without any timing window or sleep.
  * The worker thread takes everything queued when it becomes free (up to `max_batch` rows and
    `max_batch_tokens` padded tokens), runs it as one padded batch, and delivers all results of a batch
    to each event loop in one callback, so the woken coroutines submit their next steps together again.

Generation rows and scoring jobs are separate kinds of work; a batch holds one kind (max_batch bounds
the number of generation rows or scoring jobs per batch).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Item:
    kind: str  # "gen" | "score"
    payload: Any
    cost: int  # padded-token estimate, for the memory bound
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class BatchStats:
    """Counters for tests and benchmarks."""

    batches: int = 0
    rows: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)


class Batcher:
    """Runs `run_gen(rows)` / `run_score(jobs)` (lists in, result lists out) in one worker thread, batched.

    `setup()` is called once in the worker thread before the first batch (lazy model loading).
    """

    def __init__(
        self,
        setup: Callable[[], None],
        run_gen: Callable[[list[Any]], list[Any]],
        run_score: Callable[[list[Any]], list[Any]],
        max_batch: int = 32,
        max_batch_tokens: int = 65536,
        name: str = "clca-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._setup, self._run_gen, self._run_score = setup, run_gen, run_score
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self._name = name
        self._q: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._thread: threading.Thread | None = None
        self._ready = False
        self.stats = BatchStats()

    # ------------------------------------------------------------------------------------------ async side

    async def submit_gen(self, rows: list[Any], costs: list[int]) -> list[Any]:
        """Generate every row (possibly across several batches); results in row order."""
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in rows]
        self._enqueue([_Item("gen", r, c, loop, f) for r, c, f in zip(rows, costs, futs, strict=True)])
        return list(await asyncio.gather(*futs))

    async def submit_score(self, job: Any, cost: int) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._enqueue([_Item("score", job, cost, loop, fut)])
        return await fut

    def _enqueue(self, items: list[_Item]) -> None:
        loop = items[0].loop
        self._ensure_thread()
        with self._lock:
            parked = self._pending.get(loop)
            if parked is None:
                parked = self._pending[loop] = []
                loop.call_soon(self._flush, loop)
            parked.extend(items)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            items = self._pending.pop(loop, [])
        if items:
            self._q.put(items)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the worker after the work already queued (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=60)
        self._thread = None

    # ------------------------------------------------------------------------------------------ worker side

    def _work(self) -> None:
        backlog: deque[_Item] = deque()
        while True:
            if not backlog:
                got = self._q.get()
                if got is None:
                    return
                backlog.extend(got)
            stop = False
            while True:  # everything that is queued now joins the backlog
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                backlog.extend(more)
            batch = self._take(backlog)
            if batch:
                self._run(batch)
            if stop and not backlog:
                return
            if stop:
                self._q.put(None)

    def _take(self, backlog: deque[_Item]) -> list[_Item]:
        while backlog and backlog[0].future.cancelled():  # its caller is gone (e.g. a client that
            backlog.popleft()  # disconnected from `clca serve`): its work is dropped, not done
        if not backlog:
            return []
        first = backlog.popleft()
        batch, tokens, skipped = [first], first.cost, deque()
        while backlog and len(batch) < self.max_batch:
            it = backlog.popleft()
            if it.future.cancelled():
                continue
            if it.kind != first.kind:
                skipped.append(it)
                continue
            if tokens + it.cost > self.max_batch_tokens:
                skipped.append(it)
                break
            batch.append(it)
            tokens += it.cost
        backlog.extendleft(reversed(skipped))
        return batch

    def _run(self, batch: list[_Item]) -> None:
        results: list[tuple[_Item, Any, BaseException | None]]
        try:
            if not self._ready:
                self._setup()
                self._ready = True
            run = self._run_score if batch[0].kind == "score" else self._run_gen
            outs = run([it.payload for it in batch])
            results = [(it, o, None) for it, o in zip(batch, outs, strict=True)]
            if batch[0].kind == "gen":
                self.stats.batches += 1
                self.stats.rows += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                self.stats.sizes.append(len(batch))
        except BaseException as e:  # delivered to every waiting coroutine, never swallowed
            results = [(it, None, e) for it in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Any, BaseException | None]]] = {}
        for r in results:
            by_loop.setdefault(r[0].loop, []).append(r)
        for loop, rs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, rs)
            except RuntimeError:  # the loop was closed; nobody is waiting any more
                pass


def _deliver(results: list[tuple[_Item, Any, BaseException | None]]) -> None:
    for it, value, err in results:
        if it.future.done():
            continue
        if err is not None:
            it.future.set_exception(err)
        else:
            it.future.set_result(value)
