"""The engine's radix prefix cache: sharing, exact and longest-prefix lookups, the byte bound."""

from __future__ import annotations

import random

import torch

from clca.llm.engine._kvcache import seg_join, seg_len
from clca.llm.engine._radix import PrefixCache

LAYERS, HEADS, DIM, VOCAB = 2, 2, 4, 8
PER_TOKEN = LAYERS * 2 * HEADS * DIM * 4  # bytes of KV per token (float32)
LOGITS = VOCAB * 4


def _segs(key: tuple[int, ...]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """A prompt's KV as the engine hands it over: a cached part and a new part (two segments)."""
    kv, cut = _kv(key), len(key) // 2
    return [[(k[:, :, :cut], v[:, :, :cut]) for k, v in kv], [(k[:, :, cut:], v[:, :, cut:]) for k, v in kv]]


def _kv(key: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A KV whose values encode (layer, position, token), so gathered segments can be checked exactly."""
    n = len(key)
    out = []
    for li in range(LAYERS):
        base = torch.tensor(key, dtype=torch.float32)[None, None, :, None] + 1000 * li
        pos = torch.arange(n, dtype=torch.float32)[None, None, :, None] / 1000
        k = (base + pos).expand(1, HEADS, n, DIM).clone()
        out.append((k, -k))
    return out


def _logits(key: tuple[int, ...]) -> torch.Tensor:
    return torch.full((VOCAB,), float(sum(key)))


def _held(cache: PrefixCache) -> int:
    total = 0
    for node in cache._nodes():
        total += sum(k.numel() * 4 + v.numel() * 4 for k, v in node.kv)
        total += 0 if node.logits is None else LOGITS
    return total


def test_shared_prefix_is_stored_once_and_each_branch_grows() -> None:
    cache = PrefixCache(10**9)
    system = tuple(range(100, 140))
    side_a, side_b = system + (1, 2, 3), system + (7, 8)
    cache.put(side_a, _segs(side_a), _logits(side_a))
    cache.put(side_b, _segs(side_b), _logits(side_b))
    assert cache.tokens() == len(system) + 3 + 2  # the system part once
    assert cache.bytes == _held(cache) == cache.tokens() * PER_TOKEN + 2 * LOGITS
    for key in (side_a, side_b):
        segs, lg = cache.get(key)  # type: ignore[misc]
        kv = seg_join(segs)
        assert all(torch.equal(k, ek) and torch.equal(v, ev) for (k, v), (ek, ev) in zip(kv, _kv(key), strict=True))
        assert torch.equal(lg, _logits(key))
    assert cache.get(system) is None  # never stored as a prompt of its own
    grown = side_a + (4, 5, 6)
    n, segs = cache.longest(grown, len(grown) - 1)
    assert n == len(side_a) and segs is not None and seg_len(segs) == n
    assert torch.equal(seg_join(segs)[1][0], _kv(side_a)[1][0])
    cache.put(grown, _segs(grown), _logits(grown))
    assert cache.get(side_a) is None  # covered by the longer prompt of the same branch: its logits row is freed
    assert cache.bytes == _held(cache) == cache.tokens() * PER_TOKEN + 2 * LOGITS
    n, segs = cache.longest(system + (7, 9), 99)  # partial match inside a segment
    assert n == len(system) + 1 and segs is not None
    assert torch.equal(seg_join(segs)[0][1], _kv(system + (7,))[0][1])


def test_exact_prefix_of_a_segment_splits_it() -> None:
    cache = PrefixCache(10**9)
    long = tuple(range(50))
    cache.put(long, _segs(long), _logits(long))
    short = long[:30]
    cache.put(short, _segs(short), _logits(short))
    assert cache.tokens() == 50
    for key in (long, short):
        segs, lg = cache.get(key)  # type: ignore[misc]
        assert torch.equal(seg_join(segs)[0][0], _kv(key)[0][0]) and torch.equal(lg, _logits(key))


def test_memory_bound_holds_under_64_concurrent_conversations() -> None:
    """64 conversations x 2 sides, each side's prompt growing turn by turn, interleaved at random."""
    budget = 3000 * PER_TOKEN
    cache = PrefixCache(budget)
    rng = random.Random(0)
    systems = [tuple(rng.randrange(5000) for _ in range(60)) for _ in range(8)]  # 8 scenarios
    transcripts: list[list[int]] = [[] for _ in range(64)]
    privates = [[tuple(rng.randrange(5000, 6000) for _ in range(12)) for _ in range(2)] for _ in range(64)]
    for _turn in range(6):
        for conv in rng.sample(range(64), 64):
            side = len(transcripts[conv]) % 2
            transcripts[conv] += [rng.randrange(6000, 7000) for _ in range(rng.randrange(5, 25))]
            key = systems[conv % 8] + privates[conv][side] + tuple(transcripts[conv])
            n, segs = cache.longest(key, len(key) - 1)
            if segs is not None:  # what is reused is exactly what was stored for this prefix
                assert torch.equal(seg_join(segs)[0][0], _kv(key[:n])[0][0])
            cache.put(key, _segs(key), _logits(key))
            assert cache.bytes <= budget
            assert cache.bytes == _held(cache)
            assert cache.get(key) is not None  # the newest prompt always stays
    assert cache.peak_bytes <= budget


def test_zero_budget_stores_nothing_and_clear_empties() -> None:
    off = PrefixCache(0)
    key = tuple(range(20))
    off.put(key, _segs(key), _logits(key))
    assert len(off) == 0 and off.bytes == 0
    on = PrefixCache(10**6)
    on.put(key, _segs(key), _logits(key))
    assert len(on) == 1
    on.clear()
    assert len(on) == 0 and on.bytes == 0 and on.get(key) is None
