"""KV caches for the engine: per-prompt caches (batch 1) joined into left-padded batch caches, and the
reserved decoding cache that grows in place.

Per-prompt caches are plain lists of (keys, values) per layer, shaped [1, kv heads, tokens, head dim],
as the prefix cache stores them. A prompt's cache is a list of such segments in token order (`Segs`; the
radix prefix cache hands out views of its nodes' segments without copying them); `assemble` copies
several prompts' segments once, into one left-padded transformers `DynamicCache`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), batch 1
Segs = list[KV]  # a prompt's KV as consecutive segments


def seg_len(segs: Segs) -> int:
    return sum(seg[0][0].shape[-2] for seg in segs)


def seg_slice(segs: Segs, a: int, b: int) -> Segs:
    """Views of token positions [a, b) of segmented KV."""
    out: Segs = []
    off = 0
    for seg in segs:
        n = seg[0][0].shape[-2]
        lo, hi = max(a - off, 0), min(b - off, n)
        if lo < hi:
            out.append(seg if (lo, hi) == (0, n) else [(k[:, :, lo:hi], v[:, :, lo:hi]) for k, v in seg])
        off += n
    return out


def seg_join(segs: Segs) -> KV:
    """One owned KV holding all of segs (a copy)."""
    if len(segs) == 1:
        return [(k.clone(), v.clone()) for k, v in segs[0]]
    return [
        (torch.cat([s[li][0] for s in segs], dim=2), torch.cat([s[li][1] for s in segs], dim=2))
        for li in range(len(segs[0]))
    ]


def new_cache(config: Any, kv: KV | None = None) -> DynamicCache:
    """An empty cache for the model's layer types, or one holding `kv`."""
    if kv is None:
        return DynamicCache(config=config)
    return DynamicCache(ddp_cache_data=kv, config=config)


def assemble(
    config: Any, rows: list[Segs | None], lengths: list[int], reserve: int = 0
) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """One left-padded batch cache from per-row segmented caches (None or []: nothing cached, length 0).

    Each layer's batch tensor is allocated once, with room for `reserve` more positions that the next
    forwards write in place (`_ReservedLayer`: the stock layer would copy the whole cache again with
    torch.cat, which was a fifth of the time of prompts computed on a cached prefix, profiled), and every
    row's segments are copied into place; only the padding is zeroed (it is masked, and must not hold NaN
    garbage). Returns (cache, attention mask over the cached positions, next position per row).
    """
    template = next(segs[0] for segs in rows if segs)
    dev = template[0][0].device
    total = max(lengths)
    n = len(rows)
    bufs = []
    for li in range(len(template)):
        k0, v0 = template[li]
        ks = k0.new_empty((n, k0.shape[1], total + reserve, k0.shape[3]))
        vs = v0.new_empty((n, v0.shape[1], total + reserve, v0.shape[3]))
        for i, segs in enumerate(rows):
            off = total - lengths[i]
            if off:
                ks[i, :, :off].zero_()
                vs[i, :, :off].zero_()
            for seg in segs or ():
                k, v = seg[li]
                m = k.shape[-2]
                ks[i, :, off : off + m] = k[0]
                vs[i, :, off : off + m] = v[0]
                off += m
        bufs.append((ks, vs))
    cache = new_cache(config, [(ks[:, :, :total], vs[:, :, :total]) for ks, vs in bufs])
    cache.layers = [
        _ReservedLayer.over(ks, vs, total) if type(layer) is DynamicLayer else layer
        for layer, (ks, vs) in zip(cache.layers, bufs, strict=True)
    ]
    attn = torch.zeros((n, total), dtype=torch.long, device=dev)
    for i, length in enumerate(lengths):
        attn[i, total - length :] = 1
    return cache, attn, torch.tensor(lengths, dtype=torch.long, device=dev)


class _ReservedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values sit in a buffer with room for more tokens.

    DynamicLayer appends each decoding step with torch.cat, which copies the layer's whole cache at every
    layer and every step (14% of a 32-row decoding step on a 2-core CPU, profiled). Here a step is written
    in place and `keys`/`values` are views of the filled part; the buffer doubles if it ever runs out.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> None:
        super().__init__()
        self.device = keys.device
        self.is_initialized = True
        self._n = keys.shape[-2]
        self._kbuf = self._alloc(keys, self._n + reserve)
        self._vbuf = self._alloc(values, self._n + reserve)
        self._view()

    @staticmethod
    def _alloc(src: torch.Tensor, capacity: int) -> torch.Tensor:
        b, h, n, d = src.shape
        buf = src.new_empty((b, h, capacity, d))
        buf[:, :, :n] = src
        return buf

    def _view(self) -> None:
        self.keys = self._kbuf[:, :, : self._n]
        self.values = self._vbuf[:, :, : self._n]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = key_states.shape[-2]
        if self._n + q > self._kbuf.shape[-2]:
            capacity = 2 * (self._n + q)
            self._kbuf, self._vbuf = self._alloc(self.keys, capacity), self._alloc(self.values, capacity)
        self._kbuf[:, :, self._n : self._n + q] = key_states
        self._vbuf[:, :, self._n : self._n + q] = value_states
        self._n += q
        self._view()
        return self.keys, self.values

    @classmethod
    def over(cls, kbuf: torch.Tensor, vbuf: torch.Tensor, filled: int) -> _ReservedLayer:
        """A layer over ready buffers whose first `filled` positions hold the cache."""
        layer = cls.__new__(cls)
        DynamicLayer.__init__(layer)
        layer.device = kbuf.device
        layer.is_initialized = True
        layer._n, layer._kbuf, layer._vbuf = filled, kbuf, vbuf
        layer._view()
        return layer

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._view()

    def select(self, indices: torch.Tensor, drop: int) -> None:
        """Keep rows `indices` and drop the first `drop` positions (columns of padding only)."""
        if drop > 0:
            self._kbuf = self._kbuf[indices, :, drop:].contiguous()
            self._vbuf = self._vbuf[indices, :, drop:].contiguous()
            self._n -= drop
        else:
            self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._view()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a reserved decoding cache is never cropped")


class PlainBatch:
    """A decoding batch over a stock transformers cache (models with sliding-window layers): rows leave
    by `index_select` of the whole batch and none join while it runs (`joinable` is False)."""

    joinable = False

    def __init__(self, config: Any, rows: list[Segs], lengths: list[int], reserve: int) -> None:
        self.cache, self.attn, _ = assemble(config, list(rows), lengths, reserve)

    def join(self, rows: list[Segs], lengths: list[int], reserve: int) -> None:
        raise RuntimeError("rows cannot join a decoding batch over a stock cache")

    def retire(self, keep: list[int], width: int) -> list[int]:
        sel = torch.tensor(keep, dtype=torch.long, device=self.attn.device)
        drop = self.attn.shape[1] - min(width, self.attn.shape[1])
        for layer in self.cache.layers:
            if isinstance(layer, _ReservedLayer):
                layer.select(sel, drop)
            else:
                layer.batch_select_indices(sel)
        self.attn = self.attn[sel, drop:]
        return keep

    def mask(self, lengths: torch.Tensor, extra: int = 0) -> torch.Tensor:
        """The mask for the next forward (`extra` new columns); rows are left-padded, so `lengths` is implied."""
        if extra:
            ones = torch.ones((self.attn.shape[0], extra), dtype=self.attn.dtype, device=self.attn.device)
            self.attn = torch.cat([self.attn, ones], dim=1)
        return self.attn
