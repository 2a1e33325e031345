"""KV caches for the engine: per-prompt caches (batch 1) joined into left-padded batch caches, and the
reserved decoding cache that grows in place.

Per-prompt caches are plain lists of (keys, values) per layer, shaped [1, kv heads, tokens, head dim],
as the prefix cache stores them; `assemble` turns several into one transformers `DynamicCache`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), batch 1


def new_cache(config: Any, kv: KV | None = None) -> DynamicCache:
    """An empty cache for the model's layer types, or one holding `kv`."""
    if kv is None:
        return DynamicCache(config=config)
    return DynamicCache(ddp_cache_data=kv, config=config)


def assemble(config: Any, kvs: list[KV | None], lengths: list[int]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """One left-padded batch cache from per-row caches (None: a row with nothing cached, length 0).

    Returns (cache, attention mask over the cached positions, next position per row).
    """
    template = next(kv for kv in kvs if kv is not None)
    dev = template[0][0].device
    rows = [kv if kv is not None else [(k[:, :, :0], v[:, :, :0]) for k, v in template] for kv in kvs]
    total = max(lengths)
    layers = []
    for li in range(len(template)):
        ks, vs = [], []
        for kv, n in zip(rows, lengths, strict=True):
            k, v = kv[li]
            if n < total:
                pad = (0, 0, total - n, 0)
                k, v = torch.nn.functional.pad(k, pad), torch.nn.functional.pad(v, pad)
            ks.append(k)
            vs.append(v)
        layers.append((torch.cat(ks, dim=0), torch.cat(vs, dim=0)))
    attn = torch.zeros((len(kvs), total), dtype=torch.long, device=dev)
    for i, n in enumerate(lengths):
        attn[i, total - n :] = 1
    return new_cache(config, layers), attn, torch.tensor(lengths, dtype=torch.long, device=dev)


def reserve_room(cache: DynamicCache, tokens: int) -> None:
    """Give every plain layer of `cache` room for `tokens` more positions, written in place (see below)."""
    cache.layers = [
        _ReservedLayer(layer.keys, layer.values, tokens) if type(layer) is DynamicLayer else layer
        for layer in cache.layers
    ]


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

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self._view()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a reserved decoding cache is never cropped")
