"""`clca.memory.bound_heap`: freed tensor-sized blocks go back to the OS instead of staying in glibc's heap.

Each side runs in a fresh process: it frees one large block first (which, by default, raises glibc's mmap
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


def _retained(mode: str) -> tuple[bool, float]:
    env = {**os.environ, "CLCA_BOUND_HEAP": "0"}  # the default side must not be bounded by the machine's size
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    applied, mb = out.stdout.split()
    return applied == "True", float(mb)


def test_bounded_heap_returns_freed_tensors_to_the_os() -> None:
    applied, bounded = _retained("bound")
    _, default = _retained("default")
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
