"""Resident memory of this process: the current size, the peak so far, and the peak within a span of work.

`StagePeak` gives the peak of one pipeline stage without disturbing the process-wide peak that
`/usr/bin/time -v` and `getrusage` report: when the stage raised the process peak, that new peak is the
stage's (exact); otherwise the stage stayed below an earlier peak, and a sampler thread reading the
resident size every few milliseconds gives the stage's own highest reading (a short spike between two
readings can be missed, never invented).
"""

from __future__ import annotations

import functools
import resource
import sys
import threading
from types import TracebackType
from typing import Any

MB = 2**20


def rss_bytes() -> int:
    """Resident memory of this process now (Linux: /proc/self/statm; elsewhere psutil)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize()
    except OSError:  # not Linux
        import psutil

        return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (getrusage's ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class StagePeak:
    """`with StagePeak() as p: ...` then `p.peak_bytes`: the highest resident memory inside the block."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before = 0

    def __enter__(self) -> StagePeak:
        self._before = peak_rss_bytes()
        self.peak_bytes = rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="clca-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = peak_rss_bytes()
        self.peak_bytes = max(self.peak_bytes, rss_bytes())
        if after > self._before:  # the block set a new process peak: that is its own peak, exactly
            self.peak_bytes = after

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB


#: glibc's mallopt parameter number of the mmap threshold (malloc.h: M_MMAP_THRESHOLD)
_M_MMAP_THRESHOLD = -3
#: blocks of at least this size come from (and go back to) the OS directly
MMAP_THRESHOLD_BYTES = 128 * 1024
#: below this much available memory clca bounds the heap by default (CLCA_BOUND_HEAP=1/0 decides otherwise);
#: 8 GiB before `tune_malloc` brought the demo under 2 GiB without the bound
BOUND_HEAP_BELOW_BYTES = 4 * 2**30
_heap_bounded = False


def heap_bound_wanted() -> bool:
    """CLCA_BOUND_HEAP=1 (or 0) decides; unset: only on machines with less than 4 GiB available."""
    import os

    flag = os.environ.get("CLCA_BOUND_HEAP", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    import psutil

    return int(psutil.virtual_memory().available) < BOUND_HEAP_BELOW_BYTES


def bound_heap(force: bool = False) -> bool:
    """Keep freed tensor memory from staying in the process (glibc only; True when applied).

    glibc serves a freed block's size from its heap next time and raises its mmap threshold (up to 32 MB) each
    time a mapped block is freed, so the KV caches, activations and logits that the engine and training
    allocate and free by the thousand end up in heap arenas that fragment and are never given back: the
    demo's resident memory grew stage by stage to 3.7 GB with about 1.5 GB of live data. A fixed threshold
    (128 KiB, glibc's initial one) keeps every large block in its own mapping, returned to the OS when freed,
    at a price in time (each new mapping is faulted in page by page): the demo peaked at 2.2 GiB instead of
    3.7 GiB and took 13 min instead of 8 (README, "Memory"). So it is applied where memory is short: with
    `force`, with CLCA_BOUND_HEAP=1, or, when that variable is unset, on a machine with less than 4 GiB
    available. The user's own `MALLOC_MMAP_THRESHOLD_` setting wins; elsewhere (musl, macOS) nothing changes.
    """
    global _heap_bounded
    import os

    if _heap_bounded or "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return _heap_bounded
    if not (force or heap_bound_wanted()):
        return False
    libc = _glibc()
    if libc is None:
        return False
    _heap_bounded = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return _heap_bounded


#: glibc's mallopt parameter number of the arena limit (malloc.h: M_ARENA_MAX)
_M_ARENA_MAX = -8
#: by default blocks of at least this size are mappings of their own, given back when freed (a fixed threshold)
STEADY_MMAP_THRESHOLD_BYTES = 4 * 2**20
_tuned = False


def tune_malloc() -> bool:
    """One malloc arena and a fixed 4 MiB mmap threshold for the whole process (glibc only; True when applied).

    Two habits of glibc made clca's processes hold far more than they use (README, "Memory"):
      * it gives each thread that allocates while another holds the main arena an arena of its own (up to
        eight per core), and a block freed in one arena serves only that arena again. The engine decodes in
        its own thread, training runs in a worker thread of the pipeline's event loop, torch's and the
        tokenizer's threads allocate too: the process held the sum of their peaks. One arena holds their
        largest.
      * it raises its mmap threshold (up to 32 MiB) each time a mapped block is freed, so from then on the
        activations, logits and loss tiles that forwards and training steps allocate and free by the thousand
        come from the heap, where they fragment between live objects and are not given back. Fixed at 4 MiB,
        those large blocks stay mappings of their own, returned when freed; the many small ones (KV segments,
        Python objects) stay in the heap. (128 KiB, `bound_heap`, returns nearly everything but faults every
        new block in page by page: 57% slower.)
    The demo from an empty cache, one day, one machine: 2.97 GiB in 9 min 53 s by default; one arena 2.13 GiB
    (10 min 15 s); with the fixed threshold, the smaller KV budget and prompt chunks of 1,024 tokens too,
    1.96 GiB in 9 min 5 s (without the threshold: 2.31 GiB, 9 min 57 s). Applied when the CLI or a pipeline
    starts, when an in-process model loads and when training starts (threads that already have an arena keep
    it). The user's own
    `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` win, each for its part; `bound_heap` lowers the threshold
    further where memory is short; elsewhere (musl, macOS) nothing changes.
    """
    global _tuned
    import os

    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    libc = _glibc()
    if libc is None:
        return False
    done = []
    if "MALLOC_ARENA_MAX" not in os.environ:
        done.append(bool(libc.mallopt(_M_ARENA_MAX, 1)))
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and not _heap_bounded:
        done.append(bool(libc.mallopt(_M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD_BYTES)))
    _tuned = bool(done) and all(done)
    return _tuned


def return_freed_memory() -> None:
    """Collect garbage and hand the freed memory back to the OS (glibc keeps it otherwise, and peak RSS grows)."""
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> Any:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None (musl, macOS); looked up once."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process: its C library's among them
    except (OSError, TypeError):  # TypeError: Windows wants a name
        return None
    wanted = ("gnu_get_libc_version", "mallopt", "malloc_trim")
    return libc if all(hasattr(libc, name) for name in wanted) else None
