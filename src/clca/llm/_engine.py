"""The torch side of the in-process backend: batched decoding with a KV cache, and continuation scoring.

Everything here runs in the batcher's single worker thread, never on the event loop. Nothing is
imported from torch/transformers at module import time of `clca.llm`; `_hf.py` imports this module
only when a model is first used.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._kvcache import Segs, assemble, join_rows, joinable, new_cache, seg_slice, select_rows
from ._prefix import MIN_PREFIX_REUSE, shared_head, shared_prefix_groups
from ._protocol import TokenLogprob
from ._radix import PrefixCache

State = tuple[Segs, torch.Tensor]  # (KV of a prompt as segments, logits after its last token)

# ----------------------------------------------------------------------------------------------------------------
# Requests as the engine sees them (token ids, not messages)


@dataclass
class GenRow:
    """One sequence to generate. A chat request with n samples becomes n rows."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    sample_index: int = 0
    top_logprobs: int = -1  # -1: no logprobs; 0: logprob of the chosen token only; k: plus top-k alternatives
    allowed_ids: list[int] | None = None  # if set, only these tokens may be chosen (constrained decoding)
    banned_first_ids: list[int] | None = None  # tokens that may not be chosen at the first step
    ignore_eos: bool = False


@dataclass
class GenOut:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS or stop string) | "length"
    prompt_tokens: int
    logprobs: list[TokenLogprob] | None = None


@dataclass
class ScoreJob:
    """Per-token logprobs of each continuation after one shared prompt."""

    prompt_ids: list[int]
    continuations: list[list[int]]
    top_logprobs: int = 0


def row_generator_seed(seed: int, sample_index: int) -> int:
    """A 63-bit generator seed derived from (request seed, sample index) only: batch composition never matters."""
    digest = hashlib.sha256(f"{seed}/{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def uniforms(r: GenRow) -> torch.Tensor | None:
    """The row's own uniform draws, one per step (None for greedy rows)."""
    if r.temperature <= 0:
        return None
    g = torch.Generator().manual_seed(row_generator_seed(r.seed, r.sample_index))
    return torch.rand(max(r.max_tokens, 1), generator=g, dtype=torch.float64)


@dataclass
class EngineStats:
    """Where the worker's time goes (seconds and counts since load; benchmarks print differences)."""

    busy_s: float = 0.0  # inside generate() / score()
    prefill_s: float = 0.0  # prompt forwards (incl. assembling cached prefixes)
    prefill_batches: int = 0
    prefill_rows: int = 0
    cache_s: float = 0.0  # prefix-cache lookups and stores
    decode_s: float = 0.0  # decoding forwards + choosing tokens
    decode_steps: int = 0
    decode_row_steps: int = 0  # sum over steps of the rows decoded (mean batch = this / steps)
    generated_tokens: int = 0
    join_s: float = 0.0  # adding rows to a running decoding batch (copying KV), beyond their prompts
    cancelled_rows: int = 0  # rows that left a running batch because their caller was gone
    score_extra_s: float = 0.0  # continuation tokens beyond the first of scored options
    gen_calls: int = 0
    gen_rows: int = 0
    score_calls: int = 0
    score_jobs: int = 0

    def copy(self) -> EngineStats:
        return EngineStats(**self.__dict__)

    def minus(self, before: EngineStats) -> EngineStats:
        return EngineStats(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Live:
    """Book-keeping for a row while it decodes."""

    key: Any  # the caller's handle of the row
    row: GenRow
    uniforms: torch.Tensor | None
    step: int = 0  # tokens chosen so far
    ids: list[int] = field(default_factory=list)
    lps: list[TokenLogprob] = field(default_factory=list)
    cut: str | None = None  # the text up to a stop string, when one ended the row
    finish: str = ""


class Engine:
    """A loaded causal LM + tokenizer with batched generate and score functions (not thread-safe: one caller)."""

    def __init__(
        self,
        model_dir: Path,
        adapter_dir: Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        prefix_cache_mb: int = 1024,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype is None:
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        verbosity = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=self.dtype, use_safetensors=True)
            # transformers 5.x renamed `past_key_values` to `cache` in forward(); support both
            params = inspect.signature(model.forward).parameters
            self._cache_kw = "cache" if "cache" in params else "past_key_values"
            if adapter_dir is not None:
                from peft import PeftModel

                from ..errors import ModelStringError

                if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():  # never a pickled .bin
                    raise ModelStringError(f"{adapter_dir}: no adapter_model.safetensors")
                model = PeftModel.from_pretrained(model, str(adapter_dir))
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.packed_lm_head = (
            self._pack_lm_head() if self.device.type == "cpu" and self.dtype == torch.float32 else False
        )
        tok = self.tokenizer
        eos: set[int] = set()
        for src in (getattr(model, "generation_config", None), model.config, tok):
            val = getattr(src, "eos_token_id", None) if src is not None else None
            if isinstance(val, int):
                eos.add(val)
            elif isinstance(val, (list, tuple)):
                eos.update(int(v) for v in val)
        self.eos_ids = sorted(eos)
        pad = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.pad_id = int(pad)
        self.kv_bytes_per_token = self._kv_bytes_per_token()
        self.prefix_cache_tokens = prefix_cache_mb * 2**20 // self.kv_bytes_per_token
        self._prefix_cache = PrefixCache(prefix_cache_mb * 2**20)
        self.prefix_hits = 0  # prompt tokens whose computation was reused (for tests and docs)
        self.prefill_tokens = 0  # prompt tokens computed (for tests and docs)
        self.stats = EngineStats()

    # ------------------------------------------------------------------------------------------------ helpers

    def _pack_lm_head(self) -> bool:
        """On CPU in float32, run the output projection through oneDNN with a prepacked weight.

        The LM head is the largest matrix of a small model (vocabulary x hidden); MKL's sgemm handles its
        tall shape poorly on this kind of CPU, oneDNN with a packed weight computes it in 0.6x the time at
        32 rows and 0.55x at one row (benchmarks/bench_batching.py). The packed copy costs the weight's
        size in memory once; the model's own weight (tied to the embeddings) is left as it is. Returns
        whether the head was packed (not for PEFT-wrapped or non-Linear heads, or without oneDNN).
        """
        head = self.model.get_output_embeddings()
        if type(head) is not torch.nn.Linear or not torch.backends.mkldnn.is_available():
            return False
        try:
            from torch.utils.mkldnn import MkldnnLinear

            packed = MkldnnLinear(head, torch.float32)
            owner = next(m for m in self.model.modules() if any(c is head for c in m.children()))
            name = next(n for n, c in owner.named_children() if c is head)
        except (ImportError, RuntimeError, StopIteration):
            return False
        setattr(owner, name, packed)
        return True

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

    # ------------------------------------------------------------------------------------------------ generate

    def generate(self, rows: list[GenRow]) -> list[GenOut]:
        """Decode all rows as one batch; rows finish independently and leave the batch."""
        outs: list[GenOut | None] = [None] * len(rows)

        def done(pairs: list[tuple[Any, GenOut]]) -> None:
            for key, out in pairs:
                outs[key] = out

        self.decode(list(enumerate(rows)), done)
        return [o for o in outs if o is not None]

    @torch.inference_mode()
    def decode(
        self,
        first: list[tuple[Any, GenRow]],
        done: Callable[[list[tuple[Any, GenOut]]], None],
        admit: Callable[[int], list[tuple[Any, GenRow]]] | None = None,
        cancelled: Callable[[Any], bool] | None = None,
    ) -> None:
        """Decode rows (key, row) as one left-padded batch that rows join and leave at every step.

        `done(pairs)` gets every row's output as soon as the row finishes (those of one step together).
        Between steps `admit(live rows)` may hand over new rows: their prompts are computed and they join
        the running batch at the next step (continuous batching), each row decoding exactly as it would
        alone. A row for which `cancelled(key)` turns true leaves the batch at the next step, its KV freed
        and no output delivered.
        """
        t_start = time.perf_counter()
        st_ = self.stats
        st_.gen_calls += 1
        dev = self.device
        eos = torch.tensor(self.eos_ids, dtype=torch.long, device=dev) if self.eos_ids else None
        live: list[_Live] = []
        cache: Any = None
        attn = next_pos = logits = None
        pending = first
        in_loop = 0.0  # time in _join (prompt forwards, prefix cache, joining): not decoding
        while True:
            if pending:
                t_join, pre = time.perf_counter(), st_.prefill_s + st_.cache_s
                joined, cache, attn, next_pos, logits = self._join(pending, live, cache, attn, next_pos, logits)
                spent = time.perf_counter() - t_join
                in_loop += spent
                st_.join_s += spent - (st_.prefill_s + st_.cache_s - pre)
                live += joined
                pending = []
            if cancelled is not None:
                for lv in live:
                    if not lv.finish and cancelled(lv.key):
                        lv.finish = "cancelled"
                        st_.cancelled_rows += 1
            if any(lv.finish for lv in live):
                live, attn, next_pos, logits = self._retire(live, cache, attn, next_pos, logits, done)
            if not live:
                pending = admit(0) if admit is not None else []
                if not pending:
                    break
                cache = None
                continue
            chosen = self._choose(live, logits, eos)
            self._take_tokens(live, chosen, logits)
            st_.decode_steps += 1
            st_.decode_row_steps += len(live)
            st_.generated_tokens += len(live)
            if any(lv.finish for lv in live):
                keep = [j for j, lv in enumerate(live) if not lv.finish]
                live, attn, next_pos, logits = self._retire(live, cache, attn, next_pos, logits, done)
                chosen = chosen[torch.tensor(keep, dtype=torch.long, device=dev)] if live else chosen[:0]
            if admit is not None and (not live or joinable(cache)):  # else new rows wait for an empty batch
                pending = admit(len(live))
            if not live:
                if not pending:
                    break
                cache = None
                continue
            attn = torch.cat([attn, torch.ones((len(live), 1), dtype=attn.dtype, device=dev)], dim=1)
            logits = self._forward(chosen[:, None], attn, next_pos[:, None], cache, 1)[:, -1, :]
            next_pos = next_pos + 1
        now = time.perf_counter()
        st_.decode_s += now - t_start - in_loop
        st_.busy_s += now - t_start

    def _join(
        self, rows: list[tuple[Any, GenRow]], live: list[_Live], cache: Any, attn: Any, next_pos: Any, logits: Any
    ) -> tuple[list[_Live], Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the prompts of new rows and add them to the running batch (after the rows in it)."""
        self.stats.gen_rows += len(rows)
        states = self.prompt_states([r.prompt_ids for _, r in rows])
        lengths = [len(r.prompt_ids) for _, r in rows]
        reserve = max(r.max_tokens for _, r in rows)
        reserve = max([reserve, *(lv.row.max_tokens - len(lv.ids) for lv in live)])
        cache, attn = join_rows(self.config, cache, attn, [st[0] for st in states], lengths, reserve)
        new_pos = torch.tensor(lengths, dtype=torch.long, device=self.device)
        new_logits = torch.stack([st[1] for st in states])
        next_pos = new_pos if next_pos is None else torch.cat([next_pos, new_pos])
        logits = new_logits if logits is None else torch.cat([logits, new_logits])
        joined = []
        for key, r in rows:
            lv = _Live(key, r, uniforms(r))
            if r.max_tokens <= 0:
                lv.finish = "length"
            joined.append(lv)
        return joined, cache, attn, next_pos, logits

    def _retire(
        self,
        live: list[_Live],
        cache: Any,
        attn: Any,
        next_pos: Any,
        logits: Any,
        done: Callable[[list[tuple[Any, GenOut]]], None],
    ) -> tuple[list[_Live], Any, Any, Any]:
        """Deliver finished rows and drop them (and columns only padding is left in) from the batch."""
        keep = [j for j, lv in enumerate(live) if not lv.finish]
        finished = [(lv.key, self._finish(lv)) for lv in live if lv.finish and lv.finish != "cancelled"]
        if finished:
            done(finished)
        if not keep:
            return [], None, None, None
        sel = torch.tensor(keep, dtype=torch.long, device=self.device)
        next_pos = next_pos[sel]
        width = int(next_pos.max())
        attn = select_rows(cache, attn, sel, min(width, attn.shape[1]))
        return [live[j] for j in keep], attn, next_pos, logits[sel]

    def _take_tokens(self, live: list[_Live], chosen: torch.Tensor, logits: torch.Tensor) -> None:
        """Append each row's chosen token (and logprobs when asked) and mark rows that finish."""
        need_lp = any(lv.row.top_logprobs >= 0 for lv in live)
        lp = torch.log_softmax(logits, dim=-1) if need_lp else None
        for j, (lv, tid) in enumerate(zip(live, chosen.tolist(), strict=True)):
            r = lv.row
            lv.step += 1
            if lp is not None and r.top_logprobs >= 0:
                lv.lps.append(TokenLogprob(self._piece(tid), float(lp[j, tid]), self._top(lp[j], r.top_logprobs)))
            if not r.ignore_eos and tid in self.eos_ids:
                lv.finish = "stop"
                continue
            lv.ids.append(tid)
            if r.stop:
                text = self.tokenizer.decode(lv.ids, skip_special_tokens=True)
                cut = min((p for p in (text.find(s) for s in r.stop) if p >= 0), default=-1)
                if cut >= 0:
                    lv.cut, lv.finish = text[:cut], "stop"
                    continue
            if len(lv.ids) >= r.max_tokens:
                lv.finish = "length"

    def _finish(self, lv: _Live) -> GenOut:
        text = lv.cut if lv.cut is not None else self.tokenizer.decode(lv.ids, skip_special_tokens=True)
        lps = lv.lps if lv.row.top_logprobs >= 0 else None
        return GenOut(text, lv.ids, lv.finish or "length", len(lv.row.prompt_ids), lps)

    def _choose(self, live: list[_Live], logits: torch.Tensor, eos: torch.Tensor | None) -> torch.Tensor:
        """Next token per row: greedy for temperature 0, else seeded inverse-CDF sampling with top-p."""
        masked = None
        for j, lv in enumerate(live):
            r, step = lv.row, lv.step
            ban_eos = r.ignore_eos and eos is not None
            if r.allowed_ids is None and not (r.banned_first_ids and step == 0) and not ban_eos:
                continue
            if masked is None:
                masked = logits.clone()
            if r.allowed_ids is not None:
                row = torch.full_like(masked[j], float("-inf"))
                allowed = torch.tensor(r.allowed_ids, dtype=torch.long, device=logits.device)
                row[allowed] = masked[j, allowed]
                masked[j] = row
            if r.banned_first_ids and step == 0:
                masked[j, torch.tensor(r.banned_first_ids, dtype=torch.long, device=logits.device)] = float("-inf")
            if ban_eos:
                masked[j, eos] = float("-inf")
        lg = logits if masked is None else masked
        chosen = lg.argmax(dim=-1)
        samp = [j for j, lv in enumerate(live) if lv.row.temperature > 0]
        if samp:
            sel = torch.tensor(samp, dtype=torch.long, device=lg.device)
            temps = torch.tensor([live[j].row.temperature for j in samp], dtype=torch.float32, device=lg.device)
            top_p = torch.tensor([live[j].row.top_p for j in samp], dtype=torch.float64, device=lg.device)
            u = torch.tensor(
                [float(live[j].uniforms[min(live[j].step, len(live[j].uniforms) - 1)]) for j in samp],  # type: ignore[index]
                dtype=torch.float64,
                device=lg.device,
            )
            probs = torch.softmax(lg[sel] / temps[:, None], dim=-1).double()
            sp, si = probs.sort(dim=-1, descending=True)
            drop = (sp.cumsum(-1) - sp) >= top_p[:, None]
            drop[:, 0] = False
            sp = sp.masked_fill(drop, 0.0)
            cum = sp.cumsum(-1)
            target = (u * cum[:, -1]).unsqueeze(1)
            k = torch.searchsorted(cum, target).clamp(max=sp.shape[1] - 1)
            chosen[sel] = si.gather(1, k).squeeze(1)
        return chosen

    # ------------------------------------------------------------------------------------------------ scoring

    @torch.inference_mode()
    def score(self, jobs: list[ScoreJob]) -> list[list[list[TokenLogprob]]]:
        """Per-token logprobs of every continuation of every job.

        The prompts of all jobs are computed together (`prompt_states`: batched, reusing cached and shared
        prefixes). When a job's continuations start with the same tokens (e.g. " 1" ... " 10" all start with
        a space token), that shared head is appended to the prompt once, not once per continuation. The
        first token after prompt + head is read from that state's next-token distribution, so single-token
        options cost nothing beyond the prompt; the later tokens of longer continuations are computed in one
        padded forward pass over those continuations only, on top of their prompt's KV.
        """
        if any(not j.prompt_ids for j in jobs):
            raise ValueError("empty prompt")
        t_start = time.perf_counter()
        self.stats.score_calls += 1
        self.stats.score_jobs += len(jobs)
        dev = self.device
        heads = [shared_head(j.continuations) for j in jobs]
        chain = [[st] for st in self.prompt_states([j.prompt_ids for j in jobs])]  # states after prompt + head[:d]
        for d in range(1, max((len(h) for h in heads), default=0) + 1):
            idx = [ji for ji, h in enumerate(heads) if len(h) >= d]
            ext = self.prompt_states([jobs[ji].prompt_ids + heads[ji][:d] for ji in idx])
            for ji, st in zip(idx, ext, strict=True):
                chain[ji].append(st)
        tails = [[c[len(heads[ji]) :] for c in j.continuations] for ji, j in enumerate(jobs)]
        rows = [(ji, ci) for ji, ts in enumerate(tails) for ci, c in enumerate(ts) if len(c) > 1]
        rest: torch.Tensor | None = None
        row_of: dict[tuple[int, int], int] = {}
        t_rest = time.perf_counter()
        if rows:
            clen = max(len(tails[ji][ci]) for ji, ci in rows)
            k = len(rows)
            feed = torch.full((k, clen - 1), self.pad_id, dtype=torch.long)
            cmask = torch.zeros((k, clen - 1), dtype=torch.long)
            for r, (ji, ci) in enumerate(rows):
                c = tails[ji][ci][:-1]
                feed[r, : len(c)] = torch.tensor(c, dtype=torch.long)
                cmask[r, : len(c)] = 1
                row_of[(ji, ci)] = r
            plens = [len(jobs[ji].prompt_ids) + len(heads[ji]) for ji, _ in rows]
            cache, attn, next_pos = assemble(self.config, [chain[ji][-1][0] for ji, _ in rows], plens)
            attn = torch.cat([attn, cmask.to(dev)], dim=1)
            pos = next_pos[:, None] + torch.arange(clen - 1, device=dev)[None, :]
            rest = torch.log_softmax(self._forward(feed.to(dev), attn, pos, cache, 0), dim=-1)
        self.stats.score_extra_s += time.perf_counter() - t_rest
        out: list[list[list[TokenLogprob]]] = [[[] for _ in j.continuations] for j in jobs]
        for ji, job in enumerate(jobs):
            dists = torch.log_softmax(torch.stack([st[1] for st in chain[ji]]), dim=-1)  # one per head position
            nh = len(heads[ji])
            for ci, cont in enumerate(job.continuations):
                toks: list[TokenLogprob] = []
                for t, tid in enumerate(cont):
                    row = dists[t] if t <= nh else rest[row_of[(ji, ci)], t - nh - 1]  # type: ignore[index]
                    toks.append(TokenLogprob(self._piece(tid), float(row[tid]), self._top(row, job.top_logprobs)))
                out[ji][ci] = toks
        self.stats.busy_s += time.perf_counter() - t_start
        return out

    # ------------------------------------------------------------------------------------------------ prompt states

    def prompt_states(self, prompts: list[list[int]]) -> list[State]:
        """(KV cache with batch 1, logits after the last token) for each prompt.

        Exact hits in the prefix cache (`_radix.PrefixCache`) are reused as they are. Prompts with a long
        cached prefix are extended together as one padded batch (only their new tokens are computed). The
        remaining prompts are first grouped by long prefixes they share with each other: each shared prefix
        is computed once (one batch) and the prompts are then extended from it; prompts sharing nothing are
        prefilled as one batch.
        """
        t0 = time.perf_counter()
        out: dict[tuple[int, ...], State] = {}
        fresh: list[tuple[int, ...]] = []
        ext: list[tuple[tuple[int, ...], int, Segs | None]] = []
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
                continue
            reuse, kv = cache.longest(key, len(key) - 1)
            if kv is not None and reuse >= min(MIN_PREFIX_REUSE, len(key) - 1) and reuse > 0:
                ext.append((key, reuse, kv))
            else:
                fresh.append(key)
        self.stats.cache_s += time.perf_counter() - t0
        if len(fresh) > 1:
            groups, fresh = shared_prefix_groups(fresh)
            if groups:
                pstates = self._prefill([(pk, 0, None) for pk, _ in groups])
                for (pk, members), st in zip(groups, pstates, strict=True):
                    self._remember(pk, st)
                    ext.extend((m, len(pk), st[0]) for m in members)
        for items in (ext, [(k, 0, None) for k in fresh]):
            if not items:
                continue
            for (key, reuse, _), st in zip(items, self._prefill(items), strict=True):
                self.prefix_hits += reuse
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
            if chunks and (len(chunks[-1]) + 1) * new <= 2 * real:
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
            cache, pmask, _ = assemble(self.config, prefixes, reuses)
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
