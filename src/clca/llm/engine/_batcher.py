"""Dynamic batching: coroutines submit work; one worker thread runs everything queued as one batch.

How requests get grouped:
  * A coroutine's submission is parked in a per-event-loop list, and a flush is scheduled with
    `loop.call_soon`. Coroutines started together (asyncio.gather) all run their first step before
    the flush runs, so they reach the worker as one group, without any timing window or sleep.
  * The worker thread takes everything queued when it becomes free (up to `max_batch` rows and
    `max_batch_tokens` padded tokens), runs it as one padded batch, and delivers all results of a batch
    to each event loop in one callback, so the woken coroutines submit their next steps together again.

Generation rows and scoring jobs are separate kinds of work; a batch holds one kind (max_batch bounds
the number of generation rows or scoring jobs per batch). While a decoding batch runs, scoring jobs
queued meanwhile run between two of its steps.

With a `decode` function (the in-process engine), generation is continuous: rows queued while a batch
decodes join it at its next step (within max_batch rows and max_batch_tokens), each row's result is
delivered as soon as that row finishes, and a row whose caller is gone (its future cancelled, e.g. a
client that disconnected from `clca serve`) leaves the running batch at the next step.
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
        decode: Callable[..., None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._setup, self._run_gen, self._run_score = setup, run_gen, run_score
        self._decode = decode
        self._backlog: deque[_Item] = deque()
        self._stop = False
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
        backlog = self._backlog
        while True:
            if not backlog and not self._stop:
                got = self._q.get()
                if got is None:
                    return
                backlog.extend(got)
            self._drain()
            # setup first: loading the model may lower max_batch_tokens (its memory budget) before a batch is taken
            if self._ready or self._setup_now():
                batch = self._take(backlog)
                if batch:
                    self._run(batch)
            if self._stop and not backlog:
                self._stop = False
                return

    def _setup_now(self) -> bool:
        """Run setup before the first batch is taken; on failure the next batch gets the error."""
        try:
            self._setup()
            self._ready = True
            return True
        except BaseException as e:  # delivered to the waiting coroutines, never swallowed
            batch = self._take(self._backlog)
            _send([(it, None, e) for it in batch])
            return False

    def _drain(self) -> None:
        """Move everything queued now into the backlog (noting a stop request)."""
        while not self._stop:
            try:
                more = self._q.get_nowait()
            except queue.Empty:
                return
            if more is None:
                self._stop = True
                return
            self._backlog.extend(more)

    def _take(self, backlog: deque[_Item], kind: str | None = None) -> list[_Item]:
        """The first queued item of `kind` (default: whatever is first) and the items of its kind after it,
        within max_batch and max_batch_tokens; the others stay queued in their order. An item whose caller
        is gone (e.g. a client that disconnected from `clca serve`) is dropped, not done."""
        skipped: deque[_Item] = deque()
        first = None
        while backlog:
            it = backlog.popleft()
            if it.future.cancelled():
                continue
            if kind is None or it.kind == kind:
                first = it
                break
            skipped.append(it)
        if first is None:
            backlog.extendleft(reversed(skipped))
            return []
        batch, tokens = [first], first.cost
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
            if batch[0].kind == "gen" and self._decode is not None:
                self._run_decode(batch)
                return
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
        _send(results)

    def _run_decode(self, batch: list[_Item]) -> None:
        """One continuous decoding session: `batch` starts it, later rows join it while it runs."""
        waiting = {id(it): it for it in batch}
        tokens = {id(it): it.cost for it in batch}
        st = self.stats
        st.batches += 1
        st.rows += len(batch)
        st.largest = max(st.largest, len(batch))
        st.sizes.append(len(batch))

        def done(pairs: list[tuple[_Item, Any]]) -> None:
            for it, _ in pairs:
                waiting.pop(id(it), None)
                tokens.pop(id(it), None)
            _send([(it, out, None) for it, out in pairs])

        def admit(live: int) -> list[tuple[_Item, Any]]:
            self._drain()
            self._score_queued()
            for key in [k for k, it in waiting.items() if it.future.cancelled()]:
                tokens.pop(key, None)  # cancelled rows leave at this step: their room is free again
            room = self.max_batch - live
            if room <= 0 or not self._backlog or self._backlog[0].kind != "gen":
                return []
            got = self._take_gen(room, self.max_batch_tokens - sum(tokens.values()))
            for it in got:
                waiting[id(it)] = it
                tokens[id(it)] = it.cost
            if got:
                st.rows += len(got)
                st.largest = max(st.largest, live + len(got))
            return [(it, it.payload) for it in got]

        try:
            self._decode([(it, it.payload) for it in batch], done, admit, lambda it: it.future.cancelled())
        except BaseException as e:  # delivered to every waiting coroutine, never swallowed
            _send([(it, None, e) for it in waiting.values()])

    def _score_queued(self) -> None:
        """Run the scoring jobs queued now (wherever they are in the backlog) as one batch, between two
        decoding steps: a caller that scores before it generates (a role-play turn chooses its action type,
        then writes it) gets its answer within a step instead of waiting for the decoding batch to drain."""
        if not any(it.kind == "score" for it in self._backlog):  # the common case, checked every step
            return
        batch = self._take(self._backlog, "score")
        if batch:
            self._run(batch)

    def _take_gen(self, room: int, budget: int) -> list[_Item]:
        """Queued generation rows from the head of the backlog that fit `room` rows and `budget` tokens."""
        got: list[_Item] = []
        backlog = self._backlog
        while backlog and len(got) < room and backlog[0].kind == "gen":
            it = backlog[0]
            if it.future.cancelled():
                backlog.popleft()
                continue
            if it.cost > budget and (got or budget < self.max_batch_tokens):
                break
            got.append(backlog.popleft())
            budget -= it.cost
        return got


def _send(results: list[tuple[_Item, Any, BaseException | None]]) -> None:
    """Deliver results to their event loops, one callback per loop."""
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
