"""Prompt states for the engine: the KV and next-token logits after each prompt, computed in batches and
reused through the radix prefix cache (`_radix.PrefixCache`) and prefixes shared within a batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ._kvcache import Segs, assemble, new_cache, seg_slice
from ._prefix import MIN_PREFIX_REUSE, prefix_plan
from ._radix import PrefixCache
from ._rows import EngineStats

State = tuple[Segs, torch.Tensor]  # (KV of a prompt as segments, logits after its last token)
#: most (padded) new tokens in one prompt forward: larger batches are slower per token on a CPU (the
#: activations stop fitting in cache; 32 x 600 tokens at once: 475 tok/s, 8 x 600: 787 tok/s, measured)
PREFILL_CHUNK_TOKENS = 2048


class PromptStates:
    """Prompt computation for `Engine` (a mixin: the engine provides the model and the counters)."""

    stats: EngineStats
    device: torch.device
    config: Any
    pad_id: int
    prefix_hits: int
    prefill_tokens: int
    _prefix_cache: PrefixCache
    _forward: Callable[..., torch.Tensor]

    def prompt_states(self, prompts: list[list[int]]) -> list[State]:
        """(KV cache with batch 1, logits after the last token) for each prompt.

        Exact hits in the prefix cache (`_radix.PrefixCache`) are reused as they are. The other prompts are
        computed by levels (`_prefix.prefix_plan`): prefixes two or more of them share are computed once,
        each on top of the prefix it extends, and every prompt on top of the deepest shared prefix it has,
        or of a longer prefix the cache holds. Each level is one padded batch of new tokens only.
        """
        t0 = time.perf_counter()
        out: dict[tuple[int, ...], State] = {}
        todo: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        cache = self._prefix_cache
        for p in prompts:
            key = tuple(p)
            if key in seen:
                continue
            seen.add(key)
            hit = cache.get(key)
            if hit is not None:
                self.prefix_hits += len(key)
                out[key] = hit
            else:
                todo.append(key)
        self.stats.cache_s += time.perf_counter() - t0
        done: dict[tuple[int, ...], Segs] = {}  # states computed here (shared prefixes and prompts)
        for level in prefix_plan(todo):
            items: list[tuple[tuple[int, ...], int, Segs | None]] = []
            for step in level:
                reuse, kv = (len(step.parent), done[step.parent]) if step.parent else (0, None)
                cached, ckv = cache.longest(step.key, len(step.key) - 1)
                if ckv is not None and cached > reuse and cached >= min(MIN_PREFIX_REUSE, len(step.key) - 1):
                    reuse, kv = cached, ckv
                items.append((step.key, reuse, kv))
            for (key, reuse, _), st in zip(items, self._prefill(items), strict=True):
                self.prefix_hits += reuse
                done[key] = st[0]
                out[key] = st
                self._remember(key, st)
        return [out[tuple(p)] for p in prompts]

    def _prefill(self, items: list[tuple[tuple[int, ...], int, Segs | None]]) -> list[State]:
        """Compute prompts `key` on top of the first `reuse` tokens' cached KV (none when reuse is 0), as batches.

        Layout of one batch row: [left-padded cached prefix | left-padded new tokens]; the attention mask hides
        both pads, so every row's last column is its last real token (one logits row per prompt is computed).
        Rows are sorted by new length and split so that padding never more than doubles a chunk's work.
        """
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]) - items[i][1])
        chunks: list[list[int]] = []
        for i in order:
            new = len(items[i][0]) - items[i][1]
            real = new + sum(len(items[j][0]) - items[j][1] for j in chunks[-1]) if chunks else new
            padded = (len(chunks[-1]) + 1) * new if chunks else new
            if chunks and padded <= 2 * real and padded <= PREFILL_CHUNK_TOKENS:
                chunks[-1].append(i)
            else:
                chunks.append([i])
        out: list[State | None] = [None] * len(items)
        for chunk in chunks:
            for i, st in zip(chunk, self._prefill_batch([items[i] for i in chunk]), strict=True):
                out[i] = st
        return [st for st in out if st is not None]

    def _prefill_batch(self, items: list[tuple[tuple[int, ...], int, Segs | None]]) -> list[State]:
        t0 = time.perf_counter()
        dev = self.device
        n = len(items)
        reuses = [r for _, r, _ in items]
        news = [len(k) - r for k, r, _ in items]
        plen, nlen = max(reuses), max(news)
        ids = torch.full((n, nlen), self.pad_id, dtype=torch.long)
        nmask = torch.zeros((n, nlen), dtype=torch.long)
        pos = torch.zeros((n, nlen), dtype=torch.long)
        for i, (key, r, _) in enumerate(items):
            m = len(key) - r
            ids[i, nlen - m :] = torch.tensor(key[r:], dtype=torch.long)
            nmask[i, nlen - m :] = 1
            pos[i, nlen - m :] = torch.arange(r, r + m)
        prefixes = [seg_slice(kv, 0, r) if kv is not None and r > 0 else [] for _, r, kv in items]
        if plen > 0:
            cache, pmask, _ = assemble(self.config, prefixes, reuses, nlen)
            attn = torch.cat([pmask, nmask.to(dev)], dim=1)
        else:
            cache, attn = new_cache(self.config), nmask.to(dev)
        logits = self._forward(ids.to(dev), attn, pos.to(dev), cache, 1)[:, -1, :]
        self.prefill_tokens += sum(news)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        states = []
        for i in range(n):  # a row's cached prefix (views of the prefix cache), then its new positions
            b = plen + nlen - news[i]
            new = [(kk[i : i + 1, :, b:], vv[i : i + 1, :, b:]) for kk, vv in layers]
            states.append(([*prefixes[i], new], logits[i]))
        self.stats.prefill_s += time.perf_counter() - t0
        self.stats.prefill_batches += 1
        self.stats.prefill_rows += n
        return states

    def _remember(self, key: tuple[int, ...], st: State) -> None:
        """Keep a prompt state in the radix prefix cache (bounded in bytes; see `_radix.py`)."""
        t0 = time.perf_counter()
        self._prefix_cache.put(key, st[0], st[1])
        self.stats.cache_s += time.perf_counter() - t0
