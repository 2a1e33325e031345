"""Prompt states for the engine: the KV and next-token logits after each prompt, computed in batches and
reused through the radix prefix cache (`_radix.PrefixCache`) and prefixes shared within a batch."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._kvcache import Segs, assemble, new_cache, seg_slice
from ._prefix import MIN_PREFIX_REUSE, prefix_plan
from ._radix import PrefixCache
from ._rows import EngineStats

State = tuple[Segs, torch.Tensor]  # (KV of a prompt as segments, logits after its last token)
Item = tuple[tuple[int, ...], int, "Segs | None", list[list[int]]]  # (prompt, tokens reused, their KV, branches)
#: most (padded) new tokens in one prompt forward: larger batches are slower per token on a CPU (the
#: activations stop fitting in cache; 32 x 600 tokens at once: 475 tok/s, 8 x 600: 787 tok/s, measured);
#: 1,024 rather than 2,048 halves the activations (bench_memory's scoring: 70 MB less, no slower)
PREFILL_CHUNK_TOKENS = 1024


class PromptStates:
    """Prompt computation for `Engine` (a mixin: the engine provides the model and the counters)."""

    stats: EngineStats
    device: torch.device
    config: Any
    pad_id: int
    prefix_hits: int
    prefill_tokens: int
    prefill_log: list[tuple[tuple[int, ...], int]] | None
    _prefix_cache: PrefixCache
    _forward: Callable[..., torch.Tensor]

    def prompt_states(self, prompts: list[list[int]]) -> list[State]:
        """(KV cache with batch 1, logits after the last token) for each prompt."""
        return self.prompt_states_with(prompts, None)[0]

    def prompt_states_with(
        self, prompts: list[list[int]], branches: list[list[list[int]]] | None, keep_kv: bool = True
    ) -> tuple[list[State], list[list[torch.Tensor] | None]]:
        """Prompt states, and the log-probabilities along token sequences that follow each prompt.

        Exact hits in the prefix cache (`_radix.PrefixCache`) are reused as they are. The other prompts are
        computed by levels (`_prefix.prefix_plan`): prefixes two or more of them share are computed once,
        each on top of the prefix it extends, and every prompt on top of the deepest shared prefix it has,
        or of a longer prefix the cache holds. Each level is one padded batch of new tokens only.

        `branches[i]` are token sequences to read after prompt i (the options being scored, less their
        last token): computed in the same forward as the prompt, each seeing the prompt and its own earlier
        tokens only. Returned per prompt: one [len, vocab] log-softmax per branch, or None when the prompt
        was not computed here (a cache hit, a repeat): the caller computes those on top of the state.

        With `keep_kv=False` (scoring: the distributions are all it reads) the KV of a prompt computed here is
        let go as soon as its batch is done and stored in the prefix cache, unless a later batch or a repeat
        of the prompt still needs it: its state comes back as (no segments, logits), and a call holds one
        batch's KV at a time instead of every batch's.
        """
        t0 = time.perf_counter()
        per_prompt = branches or [[] for _ in prompts]
        want: dict[tuple[int, ...], list[list[int]]] = {}
        for p, bs in zip(prompts, per_prompt, strict=True):
            if bs:
                want.setdefault(tuple(p), bs)  # a repeated prompt: the first one's branches are read here
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
        read: dict[tuple[int, ...], list[torch.Tensor]] = {}
        plan = prefix_plan(todo)
        needed: set[tuple[int, ...]] = set()  # KV a later step or a repeated prompt reads
        if not keep_kv:
            needed = {step.parent for level in plan for step in level if step.parent}
            needed |= {k for k, n in Counter(map(tuple, prompts)).items() if n > 1}
        for level in plan:
            items: list[Item] = []
            for step in level:
                reuse, kv = (len(step.parent), out[step.parent][0]) if step.parent else (0, None)
                cached, ckv = cache.longest(step.key, len(step.key) - 1)
                if ckv is not None and cached > reuse and cached >= min(MIN_PREFIX_REUSE, len(step.key) - 1):
                    reuse, kv = cached, ckv
                items.append((step.key, reuse, kv, want.get(step.key, [])))
            for i, (st, lps) in self._prefill_chunks(items):  # chunk by chunk: a chunk's KV can go at once
                key, reuse, _, bs = items[i]
                self.prefix_hits += reuse
                out[key] = st  # shared prefixes too: the steps below them start from these
                if bs:
                    read[key] = lps
                self._remember(key, st)
                if not keep_kv and key not in needed:  # the chunk's KV goes once its other rows are let go too
                    out[key] = ([], st[1].clone())  # (a view would keep the chunk's logits)
                del st, lps  # else the loop variables hold this chunk's KV through the next chunk's forward
        # a repeated prompt gets its branches read once (the first time it asks for them)
        got = [read.pop(tuple(p), None) if bs else None for p, bs in zip(prompts, per_prompt, strict=True)]
        return [out[tuple(p)] for p in prompts], got

    def _prefill(self, items: list[Item]) -> list[tuple[State, list[torch.Tensor]]]:
        """Compute prompts `key` on top of the first `reuse` tokens' cached KV (none when reuse is 0), as batches;
        the states in the order of `items`."""
        out: list[tuple[State, list[torch.Tensor]] | None] = [None] * len(items)
        for i, st in self._prefill_chunks(items):
            out[i] = st
        return [st for st in out if st is not None]

    def _prefill_chunks(self, items: list[Item]) -> Iterator[tuple[int, tuple[State, list[torch.Tensor]]]]:
        """(index in `items`, state) of every item, one batch (chunk) after another.

        Layout of one batch row: [left-padded cached prefix | left-padded new tokens]; the attention mask hides
        both pads, so every row's last column is its last real token (one logits row per prompt is computed).
        Rows are sorted by new length and split so that padding never more than doubles a chunk's work.
        """

        def work(i: int) -> int:  # new tokens of a row: the prompt's, then its branches'
            return len(items[i][0]) - items[i][1] + sum(len(b) for b in items[i][3])

        order = sorted(range(len(items)), key=work)
        chunks: list[list[int]] = []
        for i in order:
            new = work(i)
            real = new + sum(work(j) for j in chunks[-1]) if chunks else new
            padded = (len(chunks[-1]) + 1) * new if chunks else new
            if chunks and padded <= 2 * real and padded <= PREFILL_CHUNK_TOKENS:
                chunks[-1].append(i)
            else:
                chunks.append([i])
        for chunk in chunks:
            yield from zip(chunk, self._prefill_batch([items[i] for i in chunk]), strict=True)

    def _prefill_batch(self, items: list[Item]) -> list[tuple[State, list[torch.Tensor]]]:
        """One forward: each row's new tokens on top of its cached prefix, then its branches (if any).

        Row layout: [left-padded cached prefix | left-padded new tokens | branches one after another, then
        padding]. Without branches a 2-D mask does (the model adds causality); with them, a 4-D mask lets
        each branch token see the prompt and the earlier tokens of its own branch only, at the positions it
        would have right after the prompt.
        """
        t0 = time.perf_counter()
        dev = self.device
        n = len(items)
        reuses = [it[1] for it in items]
        news = [len(it[0]) - it[1] for it in items]
        bsum = [sum(len(b) for b in it[3]) for it in items]
        plen, nlen, blen = max(reuses), max(news), max(bsum)
        width = nlen + blen
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        nmask = torch.zeros((n, nlen), dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        for i, (key, r, _, bs) in enumerate(items):
            m = len(key) - r
            ids[i, nlen - m : nlen] = torch.tensor(key[r:], dtype=torch.long)
            nmask[i, nlen - m :] = 1
            pos[i, nlen - m : nlen] = torch.arange(r, r + m)
            off = nlen
            for b in bs:
                ids[i, off : off + len(b)] = torch.tensor(b, dtype=torch.long)
                pos[i, off : off + len(b)] = torch.arange(len(key), len(key) + len(b))
                off += len(b)
            pos[i, off:] = len(key)
        prefixes = [seg_slice(kv, 0, r) if kv is not None and r > 0 else [] for _, r, kv, _ in items]
        if plen > 0:
            cache, pmask, _ = assemble(self.config, prefixes, reuses, width)
        else:
            cache, pmask = new_cache(self.config), torch.zeros((n, 0), dtype=torch.long, device=dev)
        if blen == 0:
            attn = torch.cat([pmask, nmask.to(dev)], dim=1)
            logits = self._forward(ids.to(dev), attn, pos.to(dev), cache, 1)[:, -1, :]
            reads = [[] for _ in items]
        else:
            attn = _branch_mask(pmask, nmask, [[len(b) for b in it[3]] for it in items], blen).to(dev)
            keep = torch.cat([torch.tensor([nlen - 1]), torch.arange(nlen, width)]).to(dev)
            out = self._forward(ids.to(dev), attn, pos.to(dev), cache, keep)
            logits = out[:, 0, :]
            reads = []
            for i, it in enumerate(items):
                off, row = 1, []
                for b in it[3]:
                    row.append(torch.log_softmax(out[i, off : off + len(b)], dim=-1))
                    off += len(b)
                reads.append(row)
        self.prefill_tokens += sum(news)
        if self.prefill_log is not None:  # benchmarks: the same work through a plain model (benchmarks/_profile.py)
            self.prefill_log += [(it[0], it[1]) for it in items]
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        states = []
        for i in range(n):  # a row's cached prefix (views of the prefix cache), then its new positions
            b = plen + nlen - news[i]
            new = [(kk[i : i + 1, :, b : plen + nlen], vv[i : i + 1, :, b : plen + nlen]) for kk, vv in layers]
            states.append((([*prefixes[i], new], logits[i]), reads[i]))
        self.stats.prefill_s += time.perf_counter() - t0
        self.stats.prefill_batches += 1
        self.stats.prefill_rows += n
        return states

    def _remember(self, key: tuple[int, ...], st: State) -> None:
        """Keep a prompt state in the radix prefix cache (bounded in bytes; see `_radix.py`)."""
        t0 = time.perf_counter()
        self._prefix_cache.put(key, st[0], st[1])
        self.stats.cache_s += time.perf_counter() - t0


def _branch_mask(pmask: torch.Tensor, nmask: torch.Tensor, branch_lens: list[list[int]], blen: int) -> torch.Tensor:
    """4-D boolean mask [rows, 1, new + branch columns, prefix + new + branch columns] (True = attend)."""
    n, plen = pmask.shape
    nlen = nmask.shape[1]
    q = nlen + blen
    mask = torch.zeros((n, 1, q, plen + q), dtype=torch.bool)
    mask[:, 0, :, :plen] = pmask.bool().cpu()[:, None, :]  # every query sees its cached prefix
    real = nmask.bool()
    causal = torch.ones((nlen, nlen), dtype=torch.bool).tril()
    mask[:, 0, :nlen, plen : plen + nlen] = causal[None] & real[:, None, :]  # the prompt: causal, no padding
    mask[:, 0, nlen:, plen : plen + nlen] = real[:, None, :]  # branches see the whole prompt
    for i, lens in enumerate(branch_lens):
        off = nlen
        for m in lens:  # each branch sees its own earlier tokens
            mask[i, 0, off : off + m, plen + off : plen + off + m] = torch.ones((m, m), dtype=torch.bool).tril()
            off += m
    idx = torch.arange(q)
    mask[:, 0, idx, plen + idx] = True  # every query sees itself (padding queries too: no empty softmax rows)
    return mask
