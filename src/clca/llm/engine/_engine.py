"""The torch side of the in-process backend: a loaded model with batched decoding and continuation scoring.

Everything here runs in the batcher's single worker thread, never on the event loop. Nothing is
imported from torch/transformers at module import time of `clca.llm`; `clca.llm.engine` loads this
module (for `backends/_hf.py`) only when a model is first used. The work is split by job: `_loader`
builds the model and tokenizer, `_prompt_states` computes prompts through the prefix cache (`_radix`),
`_scheduler` runs the decoding batch that rows join and leave, `_sampler` chooses tokens; this module ties
them together and scores continuations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .._protocol import TokenLogprob
from ._budget import plan_budget
from ._kvcache import new_cache
from ._loader import load
from ._prompt_states import PromptStates, State
from ._radix import PrefixCache
from ._rows import EngineStats, GenOut, GenRow, ScoreJob
from ._sampler import row_generator_seed
from ._scheduler import DecodeLoop
from ._slots import slots_supported

__all__ = ["Engine", "EngineStats", "GenOut", "GenRow", "ScoreJob", "State", "row_generator_seed"]


class Engine(DecodeLoop, PromptStates):
    """A loaded causal LM + tokenizer with batched generate and score functions (not thread-safe: one caller)."""

    def __init__(
        self,
        model_dir: Path,
        adapter_dir: Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        prefix_cache_mb: int | None = None,
        max_kv_mb: int | None = None,
    ) -> None:
        m = load(model_dir, adapter_dir, device, dtype)
        self.model, self.tokenizer, self.config = m.model, m.tokenizer, m.config
        self.device, self.dtype, self._cache_kw = m.device, m.dtype, m.cache_kw
        self.vocab_size, self.packed_lm_head = m.vocab_size, m.packed_lm_head
        self.slots = slots_supported(self.config)  # rows can join a running decoding batch
        self.eos_ids, self.pad_id = m.eos_ids, m.pad_id
        self.kv_bytes_per_token = self._kv_bytes_per_token()
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        self.budget = plan_budget(max_kv_mb, prefix_cache_mb, self.kv_bytes_per_token, weights, str(self.device))
        self.prefix_cache_tokens = self.budget.prefix_bytes // self.kv_bytes_per_token
        self._prefix_cache = PrefixCache(self.budget.prefix_bytes)
        self.prefix_hits = 0  # prompt tokens whose computation was reused (for tests and docs)
        self.prefill_tokens = 0  # prompt tokens computed (for tests and docs)
        self.prefill_log: list[tuple[tuple[int, ...], int]] | None = None  # a list: (prompt, reused) per row computed
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

        The prompts of all jobs are computed together (`prompt_states_with`: batched, reusing cached and
        shared prefixes). The first token of every continuation is read from the distribution after its
        prompt, so single-token options cost nothing beyond the prompt; the later tokens of longer
        continuations are computed in the same forward as their prompt, as branches after it that see the
        prompt and their own earlier tokens only (no second forward, no copy of the prompt's KV per option).
        A prompt that came whole from the prefix cache has its branches computed on top of the cached KV.
        """
        if any(not j.prompt_ids for j in jobs):
            raise ValueError("empty prompt")
        t_start = time.perf_counter()
        self.stats.score_calls += 1
        self.stats.score_jobs += len(jobs)
        pieces = [[c[:-1] for c in j.continuations if len(c) > 1] for j in jobs]
        states, reads = self.prompt_states_with([j.prompt_ids for j in jobs], pieces, keep_kv=False)
        t_rest, pre = time.perf_counter(), self.stats.prefill_s
        missing = [ji for ji, r in enumerate(reads) if r is None and pieces[ji]]  # prompts not computed here
        tails = self._tails([jobs[ji] for ji in missing], [states[ji][0] for ji in missing])
        late = dict(zip(missing, tails, strict=True))
        self.stats.score_extra_s += time.perf_counter() - t_rest - (self.stats.prefill_s - pre)
        rest: dict[int, dict[int, torch.Tensor]] = {}
        for ji, job in enumerate(jobs):
            got = late[ji] if ji in late else reads[ji] or []
            multi = [ci for ci, c in enumerate(job.continuations) if len(c) > 1]
            rest[ji] = dict(zip(multi, got, strict=True))
        out: list[list[list[TokenLogprob]]] = [[[] for _ in j.continuations] for j in jobs]
        for ji, job in enumerate(jobs):
            first = torch.log_softmax(states[ji][1], dim=-1)  # the distribution after the prompt
            for ci, cont in enumerate(job.continuations):
                toks: list[TokenLogprob] = []
                for t, tid in enumerate(cont):
                    row = first if t == 0 else rest[ji][ci][t - 1]
                    toks.append(TokenLogprob(self._piece(tid), float(row[tid]), self._top(row, job.top_logprobs)))
                out[ji][ci] = toks
        self.stats.busy_s += time.perf_counter() - t_start
        return out

    def _tails(self, jobs: list[ScoreJob], states: list[Any]) -> list[list[torch.Tensor]]:
        """The later tokens' log-probabilities of multi-token continuations of prompts whose state came from
        the cache (no forward of their own to read them in): one [len - 1, vocab] tensor per such
        continuation, in order, computed as branches of a one-token prompt forward on top of the cached KV."""
        if not jobs:
            return []
        items = [
            (tuple(j.prompt_ids), len(j.prompt_ids) - 1, st, [c[:-1] for c in j.continuations if len(c) > 1])
            for j, st in zip(jobs, states, strict=True)
        ]  # _prefill_batch reuses the state's first len - 1 tokens
        return [reads for _, reads in self._prefill(items)]
