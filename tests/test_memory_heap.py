"""glibc's allocator in clca's processes (`clca.memory`): `tune_malloc` (one arena, a fixed 4 MiB mmap threshold)
and `bound_heap` (a 128 KiB threshold where memory is short).

`bound_heap`: freed tensor-sized blocks go back to the OS instead of staying in glibc's heap. Each side runs
in a fresh process: it frees one large block first (which, by default, raises glibc's mmap
threshold above that size), then allocates 1 MiB tensors interleaved with small long-lived objects (as the
engine's KV caches and the Python objects of the records it builds are) and frees the tensors. Without the
bound the tensors sat in the heap between the live objects and stay resident; with it they were mappings
of their own and leave.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")

SCRIPT = """
import sys
import torch
from clca.memory import bound_heap, rss_bytes
applied = bound_heap(force=True) if sys.argv[1] == "bound" else False
big = torch.empty(8 * 2**20, dtype=torch.uint8); big.fill_(1); del big   # a large block freed
base = rss_bytes()
tensors, keep = [], []
for i in range(400):
    t = torch.empty(2**20, dtype=torch.uint8); t.fill_(1); tensors.append(t)   # 1 MiB, touched
    keep.append(bytearray(4096))                                                # small, lives on
del tensors
print(applied, (rss_bytes() - base) / 2**20)
"""


def _run(script: str, mode: str) -> tuple[bool, float]:
    """Run one side in a fresh process, without the user's allocator settings and without the machine-size heap
    bound (the default side must be glibc's default): (whether clca's setting was applied, MiB retained)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}
    env["CLCA_BOUND_HEAP"] = "0"
    out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True, env=env)
    applied, mb = out.stdout.split()
    return applied == "True", float(mb)


def test_bounded_heap_returns_freed_tensors_to_the_os() -> None:
    applied, bounded = _run(SCRIPT, "bound")
    _, default = _run(SCRIPT, "default")
    assert applied
    # 400 MiB of tensors were freed: by default most of it stays resident; bounded, only the small objects
    assert default > 200, f"glibc kept {default:.0f} MiB by default (the test's premise)"
    assert bounded < 50, f"{bounded:.0f} MiB retained with the bounded heap"


def test_the_bound_is_chosen_by_the_variable_else_by_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from clca import memory

    monkeypatch.setenv("CLCA_BOUND_HEAP", "1")
    assert memory.heap_bound_wanted()
    monkeypatch.setenv("CLCA_BOUND_HEAP", "off")
    assert not memory.heap_bound_wanted()
    monkeypatch.delenv("CLCA_BOUND_HEAP")
    small = memory.BOUND_HEAP_BELOW_BYTES // 2
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("vm", (), {"available": small})())
    assert memory.heap_bound_wanted()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("vm", (), {"available": 4 * small})())
    assert not memory.heap_bound_wanted()


ARENA_SCRIPT = """
import sys, threading
import torch
from clca.memory import rss_bytes, tune_malloc
applied = tune_malloc() if sys.argv[1] == "one" else False
big = torch.empty(8 * 2**20, dtype=torch.uint8); big.fill_(1); del big   # a large block freed
base = rss_bytes()
done, release, keep = [threading.Event(), threading.Event()], threading.Event(), []
def work(k):   # 200 MiB of 1 MiB tensors among small live objects, freed; the thread stays alive
    tensors = []
    for i in range(200):
        t = torch.empty(2**20, dtype=torch.uint8); t.fill_(1); tensors.append(t)
        keep.append(bytearray(4096))
    del tensors
    done[k].set()
    release.wait()
threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
threads[0].start(); done[0].wait()      # the first thread's work, then the second's
threads[1].start(); done[1].wait()
grown = (rss_bytes() - base) / 2**20
release.set()
for t in threads:
    t.join()
print(applied, grown)
"""


def test_one_arena_lets_a_thread_reuse_what_another_freed() -> None:
    applied, one = _run(ARENA_SCRIPT, "one")
    _, default = _run(ARENA_SCRIPT, "default")
    assert applied
    # two threads, one after the other, each touched and freed 200 MiB: by default each had its own arena and
    # the process kept both (about 400 MiB); with one arena the second reused the first's (about 200-250 MiB)
    assert default > 330, f"{default:.0f} MiB kept by default (the test's premise: an arena per thread)"
    assert one < 0.75 * default, f"{one:.0f} MiB kept with one arena against {default:.0f} MiB by default"


THRESHOLD_SCRIPT = """
import sys
import torch
from clca.memory import rss_bytes, tune_malloc
applied = tune_malloc() if sys.argv[1] == "tuned" else False
big = torch.empty(16 * 2**20, dtype=torch.uint8); big.fill_(1); del big   # by default: threshold now 16 MiB
base = rss_bytes()
tensors, keep = [], []
for i in range(40):
    t = torch.empty(6 * 2**20, dtype=torch.uint8); t.fill_(1); tensors.append(t)   # 6 MiB, touched
    keep.append(bytearray(4096))                                                    # small, lives on
del tensors
print(applied, (rss_bytes() - base) / 2**20)
"""


def test_large_blocks_go_back_once_freed_with_the_fixed_threshold() -> None:
    applied, tuned = _run(THRESHOLD_SCRIPT, "tuned")
    _, default = _run(THRESHOLD_SCRIPT, "default")
    assert applied
    # 240 MiB of 6 MiB blocks freed: by default (glibc's threshold risen to 16 MiB) they sat in the heap between
    # the small live objects and stay; with the threshold fixed at 4 MiB each was a mapping and went back
    assert default > 150, f"glibc kept {default:.0f} MiB by default (the test's premise)"
    assert tuned < 30, f"{tuned:.0f} MiB retained with the fixed threshold"


def test_the_users_own_allocator_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from clca import memory

    monkeypatch.setattr(memory, "_tuned", False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert memory.tune_malloc() is False  # nothing left to set
