"""The torch side of the in-process backend: a loaded model with batched decoding and continuation scoring.

Everything here runs in the batcher's single worker thread, never on the event loop. Nothing is
imported from torch/transformers at module import time of `clca.llm`; `_hf.py` imports this module
only when a model is first used. The work is split by job: `_loader` builds the model and tokenizer,
`_prompt_states` computes prompts through the prefix cache (`_radix`), `_scheduler` runs the decoding
batch that rows join and leave, `_sampler` chooses tokens; this module ties them together and scores
continuations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ._kvcache import assemble, new_cache
from ._loader import load
from ._prefix import shared_head
from ._prompt_states import PromptStates, State
from ._protocol import TokenLogprob
from ._radix import PrefixCache
from ._rows import EngineStats, GenOut, GenRow, ScoreJob
from ._sampler import row_generator_seed
from ._scheduler import DecodeLoop

__all__ = ["Engine", "EngineStats", "GenOut", "GenRow", "ScoreJob", "State", "row_generator_seed"]


class Engine(DecodeLoop, PromptStates):
    """A loaded causal LM + tokenizer with batched generate and score functions (not thread-safe: one caller)."""

    def __init__(
        self,
        model_dir: Path,
        adapter_dir: Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        prefix_cache_mb: int = 1024,
    ) -> None:
        m = load(model_dir, adapter_dir, device, dtype)
        self.model, self.tokenizer, self.config = m.model, m.tokenizer, m.config
        self.device, self.dtype, self._cache_kw = m.device, m.dtype, m.cache_kw
        self.vocab_size, self.packed_lm_head = m.vocab_size, m.packed_lm_head
        self.eos_ids, self.pad_id = m.eos_ids, m.pad_id
        self.kv_bytes_per_token = self._kv_bytes_per_token()
        self.prefix_cache_tokens = prefix_cache_mb * 2**20 // self.kv_bytes_per_token
        self._prefix_cache = PrefixCache(prefix_cache_mb * 2**20)
        self.prefix_hits = 0  # prompt tokens whose computation was reused (for tests and docs)
        self.prefill_tokens = 0  # prompt tokens computed (for tests and docs)
        self.stats = EngineStats()

    # ------------------------------------------------------------------------------------------------ helpers

    def _kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token takes (all layers, keys and values), measured on a one-token forward."""
        with torch.inference_mode():
            cache = new_cache(self.config)
            one = torch.tensor([[self.pad_id]], device=self.device)
            self._forward(one, torch.ones_like(one), torch.zeros_like(one), cache, 1)
        return max(1, sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)))

    def _forward(self, ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor, cache: Any, keep: int) -> torch.Tensor:
        kwargs = {self._cache_kw: cache}
        out = self.model(
            input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=keep, **kwargs
        )
        return out.logits.float()

    def _piece(self, tid: int) -> str:
        return self.tokenizer.decode([tid])

    def _top(self, lp_row: torch.Tensor, k: int) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        vals, idx = lp_row.topk(k)
        return [(self._piece(int(i)), float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)]

    # ------------------------------------------------------------------------------------------------ scoring

    @torch.inference_mode()
    def score(self, jobs: list[ScoreJob]) -> list[list[list[TokenLogprob]]]:
        """Per-token logprobs of every continuation of every job.

        The prompts of all jobs are computed together (`prompt_states`: batched, reusing cached and shared
        prefixes). When a job's continuations start with the same tokens (e.g. " 1" ... " 10" all start with
        a space token), that shared head is appended to the prompt once, not once per continuation. The
        first token after prompt + head is read from that state's next-token distribution, so single-token
        options cost nothing beyond the prompt; the later tokens of longer continuations are computed by
        `_tails`, in one forward on top of their prompts' KV.
        """
        if any(not j.prompt_ids for j in jobs):
            raise ValueError("empty prompt")
        t_start = time.perf_counter()
        self.stats.score_calls += 1
        self.stats.score_jobs += len(jobs)
        heads = [shared_head(j.continuations) for j in jobs]
        chain = [[st] for st in self.prompt_states([j.prompt_ids for j in jobs])]  # states after prompt + head[:d]
        for d in range(1, max((len(h) for h in heads), default=0) + 1):
            idx = [ji for ji, h in enumerate(heads) if len(h) >= d]
            ext = self.prompt_states([jobs[ji].prompt_ids + heads[ji][:d] for ji in idx])
            for ji, st in zip(idx, ext, strict=True):
                chain[ji].append(st)
        tails = [[c[len(heads[ji]) :] for c in j.continuations] for ji, j in enumerate(jobs)]
        t_rest = time.perf_counter()
        rest = self._tails(jobs, heads, tails, [chain[ji][-1][0] for ji in range(len(jobs))])
        self.stats.score_extra_s += time.perf_counter() - t_rest
        out: list[list[list[TokenLogprob]]] = [[[] for _ in j.continuations] for j in jobs]
        for ji, job in enumerate(jobs):
            dists = torch.log_softmax(torch.stack([st[1] for st in chain[ji]]), dim=-1)  # one per head position
            nh = len(heads[ji])
            for ci, cont in enumerate(job.continuations):
                toks: list[TokenLogprob] = []
                for t, tid in enumerate(cont):
                    row = dists[t] if t <= nh else rest[ji][ci][t - nh - 1]
                    toks.append(TokenLogprob(self._piece(tid), float(row[tid]), self._top(row, job.top_logprobs)))
                out[ji][ci] = toks
        self.stats.busy_s += time.perf_counter() - t_start
        return out

    def _tails(
        self, jobs: list[ScoreJob], heads: list[list[int]], tails: list[list[list[int]]], states: list[Any]
    ) -> dict[int, dict[int, torch.Tensor]]:
        """Log-probabilities at the later tokens of multi-token continuations: {job: {continuation: [t, vocab]}}.

        One batch row per job: its continuations' tokens (all but the last of each) one after the other,
        on top of that job's prompt KV (copied once, not once per continuation), with a mask that lets each
        continuation see the prompt and its own earlier tokens only, and positions that restart after the
        prompt for each continuation, so each is computed exactly as if it were alone after the prompt.
        """
        dev = self.device
        pieces = {ji: [(ci, t[:-1]) for ci, t in enumerate(ts) if len(t) > 1] for ji, ts in enumerate(tails)}
        pieces = {ji: ps for ji, ps in pieces.items() if ps}
        if not pieces:
            return {}
        order = list(pieces)
        plens = [len(jobs[ji].prompt_ids) + len(heads[ji]) for ji in order]
        width = max(sum(len(c) for _, c in pieces[ji]) for ji in order)
        cache, pmask, _ = assemble(self.config, [states[ji] for ji in order], plens, width)
        n, p = len(order), pmask.shape[1]
        feed = torch.full((n, width), self.pad_id, dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, 1, width, p + width), dtype=torch.bool)
        mask[:, 0, :, :p] = pmask.bool()[:, None, :]  # every query sees its prompt (padding queries too)
        spans: dict[tuple[int, int], int] = {}
        for r, ji in enumerate(order):
            off = 0
            for ci, c in pieces[ji]:
                m = len(c)
                feed[r, off : off + m] = torch.tensor(c, dtype=torch.long)
                pos[r, off : off + m] = plens[r] + torch.arange(m)
                mask[r, 0, off : off + m, p + off : p + off + m] = torch.ones((m, m), dtype=torch.bool).tril()
                spans[(ji, ci)] = off
                off += m
            pos[r, off:] = plens[r]
        logits = self._forward(feed.to(dev), mask.to(dev), pos.to(dev), cache, 0)
        out: dict[int, dict[int, torch.Tensor]] = {}
        for r, ji in enumerate(order):
            for ci, c in pieces[ji]:
                off = spans[(ji, ci)]
                out.setdefault(ji, {})[ci] = torch.log_softmax(logits[r, off : off + len(c)], dim=-1)
        return out
