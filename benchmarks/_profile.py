"""Shared by the benchmarks: where the in-process engine's time goes, and a plain-model reference.

`Recorder` wraps an in-process backend's `generate_ids` / `score_ids` to record every prompt (token ids)
and count generated tokens. `plain_forward_rate` computes a sample of those same prompts with a plain
batched transformers forward (a fresh copy of the model, right-padded batches, `logits_to_keep=1`), which
is the prompt rate a plain model reaches on this machine now. `plain_same_work_rate` does the engine's
own prompt work (each row's reused tokens computed first, untimed, then its new tokens on top) with a plain
transformers forward: the rate the same work reaches without clca's engine (`report_same_work` prints
it). `plain_decode_rate` times plain batched decoding of a sample of the workload's prompts, all rows in
one batch. `report` prints the engine's time breakdown (`EngineStats` differences) and the `efficiency=`
line:

    efficiency = workload prompt tok/s / plain forward tok/s
    workload prompt tok/s = prompt tokens the engine computed / (wall time - time spent decoding)

so every second the workload spends neither decoding nor in a prompt forward (scheduling gaps, Python
work per row, waiting for the slowest row of a batch) lowers it.
"""

from __future__ import annotations

import time
from typing import Any


class Recorder:
    """Records the prompts an in-process backend is asked for and the tokens it generates."""

    def __init__(self, llm: Any) -> None:
        if not hasattr(llm, "generate_ids"):
            raise SystemExit("this benchmark needs an in-process model (embedded or hf:PATH)")
        self.prompts: list[list[int]] = []
        self.generated = 0
        self.gen_calls = 0
        self.score_calls = 0
        gen, score = llm.generate_ids, llm.score_ids

        async def generate_ids(prompt_ids: list[int], rows: list[dict[str, Any]]) -> Any:
            self.prompts.append(list(prompt_ids))
            self.gen_calls += 1
            outs = await gen(prompt_ids, rows)
            self.generated += sum(len(o.token_ids) for o in outs)
            return outs

        async def score_ids(prompt_ids: list[int], continuations: list[list[int]], top_logprobs: int = 0) -> Any:
            self.prompts.append(list(prompt_ids))
            self.score_calls += 1
            return await score(prompt_ids, continuations, top_logprobs)

        llm.generate_ids, llm.score_ids = generate_ids, score_ids

    def mark(self) -> tuple[int, int]:
        return len(self.prompts), self.generated


def _spread(items: list[Any], n: int) -> list[Any]:
    """n items spread evenly over a sorted list (all of them when there are no more than n)."""
    return items if len(items) <= n else [items[int(i * len(items) / n)] for i in range(n)]


def _plain_model(llm: Any) -> tuple[Any, int, str]:
    """A fresh stock transformers copy of the workload's model, in its precision; its pad id and the
    keyword this transformers version calls the cache."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(llm._resolved_dir()), dtype=llm.engine.dtype, use_safetensors=True)
    return model.eval(), llm.engine.pad_id, llm.engine._cache_kw


def plain_forward_rate(llm: Any, prompts: list[list[int]], batch: int = 8, sample: int = 48) -> float:
    """Prompt tokens/s of a plain batched transformers forward over (a spread sample of) these prompts."""
    import torch

    uniq = _spread(sorted({tuple(p) for p in prompts}, key=len, reverse=True), sample)
    model, pad, _ = _plain_model(llm)
    with torch.inference_mode():
        ids = torch.tensor([uniq[-1]])
        model(input_ids=ids, logits_to_keep=1)  # warm-up
        t0, tokens = time.perf_counter(), 0
        for i in range(0, len(uniq), batch):
            chunk = uniq[i : i + batch]
            n = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), n), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), n), dtype=torch.long)
            for j, p in enumerate(chunk):
                ids[j, : len(p)] = torch.tensor(p)
                mask[j, : len(p)] = 1
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
            tokens += sum(len(p) for p in chunk)
        secs = time.perf_counter() - t0
    del model
    return tokens / secs


def plain_same_work_rate(llm: Any, log: list[tuple[tuple[int, ...], int]], batch: int = 8, sample: int = 48) -> float:
    """Prompt tokens/s of a plain transformers forward doing the engine's own prompt work (same run).

    `log` is the engine's `prefill_log`: per computed row, the prompt and how many of its tokens were
    reused from the prefix cache. For a spread sample of rows, batches of `batch` (sorted by new tokens)
    get their reused tokens computed first (a stock `DynamicCache`, left-padded, not timed); then one timed
    forward computes every row's new tokens on top (right-padded, `logits_to_keep=1`). This is the same
    work as the engine's (same cached lengths, same new tokens) without its scheduling and caching.
    """
    import torch
    from transformers import DynamicCache

    rows = sorted({(p, r) for p, r in log if len(p) > r}, key=lambda pr: (len(pr[0]) - pr[1], pr[1]))
    rows = _spread(rows, sample)
    model, pad, cache_kw = _plain_model(llm)
    secs, tokens = 0.0, 0
    with torch.inference_mode():
        model(input_ids=torch.tensor([list(rows[0][0])]), logits_to_keep=1)  # warm-up
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            plen = max(r for _, r in chunk)
            nlen = max(len(p) - r for p, r in chunk)
            past = torch.full((len(chunk), plen), pad, dtype=torch.long)
            pmask = torch.zeros((len(chunk), plen), dtype=torch.long)
            new = torch.full((len(chunk), nlen), pad, dtype=torch.long)
            nmask = torch.zeros((len(chunk), nlen), dtype=torch.long)
            pos = torch.zeros((len(chunk), nlen), dtype=torch.long)
            for j, (p, r) in enumerate(chunk):
                if r:
                    past[j, plen - r :] = torch.tensor(p[:r])
                    pmask[j, plen - r :] = 1
                m = len(p) - r
                new[j, :m] = torch.tensor(p[r:])
                nmask[j, :m] = 1
                pos[j] = torch.arange(r, r + nlen)
            cache = DynamicCache(config=model.config)
            if plen:
                model(input_ids=past, attention_mask=pmask, use_cache=True, logits_to_keep=1, **{cache_kw: cache})
            t0 = time.perf_counter()
            model(input_ids=new, attention_mask=torch.cat([pmask, nmask], dim=1), position_ids=pos, use_cache=True,
                  logits_to_keep=1, **{cache_kw: cache})  # fmt: skip
            secs += time.perf_counter() - t0
            tokens += int(nmask.sum())
    del model
    return tokens / secs


def report_same_work(llm: Any, log: list[tuple[tuple[int, ...], int]], workload_rate: float, sample: int = 48) -> float:
    """Print the same-work reference next to the workload's prompt rate; returns the reference's rate."""
    same = plain_same_work_rate(llm, log, sample=sample)
    print(f"plain forward of the same work (each row's reused tokens computed first, untimed; batch 8): "
          f"{same:.1f} prompt tok/s; workload / same work = {workload_rate / same:.3f}")  # fmt: skip
    return same


def plain_decode_rate(llm: Any, prompts: list[list[int]], batch: int = 32, steps: int = 48) -> float:
    """Generated tokens/s of plain transformers decoding `batch` of these prompts at once (same run).

    A spread sample of `batch` distinct prompts (short to long) is computed (left-padded, untimed), then
    `steps` greedy decoding steps of the whole batch are timed: the fastest a plain model decodes these
    conversations on this machine, every row in one batch from the first step to the last.
    """
    import torch
    from transformers import DynamicCache

    uniq = _spread(sorted({tuple(p) for p in prompts}, key=len, reverse=True), batch)
    model, pad, cache_kw = _plain_model(llm)
    n = max(len(p) for p in uniq)
    ids = torch.full((len(uniq), n), pad, dtype=torch.long)
    mask = torch.zeros((len(uniq), n), dtype=torch.long)
    for j, p in enumerate(uniq):
        ids[j, n - len(p) :] = torch.tensor(p)
        mask[j, n - len(p) :] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                    **{cache_kw: cache})  # fmt: skip
        nxt, pos = out.logits[:, -1].argmax(-1, keepdim=True), pos[:, -1:] + 1
        t0 = time.perf_counter()
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
            out = model(input_ids=nxt, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_kw: cache})
            nxt, pos = out.logits[:, -1].argmax(-1, keepdim=True), pos + 1
        secs = time.perf_counter() - t0
    del model
    return len(uniq) * steps / secs


def report(name: str, stats: Any, wall: float, prompt_tokens: int, prompts: int, generated: int) -> dict[str, float]:
    """Print one workload's time breakdown; returns its rates."""
    join = getattr(stats, "join_s", 0.0)  # rows joining a running decoding batch (continuous batching)
    other = stats.busy_s - stats.prefill_s - stats.decode_s - stats.score_extra_s - stats.cache_s - join
    idle = wall - stats.busy_s
    print(f"[{name}] wall {wall:.1f}s: prompt forwards {stats.prefill_s:.1f}s, decoding {stats.decode_s:.1f}s, "
          f"option tails {stats.score_extra_s:.1f}s, prefix cache {stats.cache_s:.1f}s, joining rows {join:.1f}s, "
          f"other engine {other:.1f}s, "
          f"engine idle (event loop, tokenizing, stage code, waiting) {idle:.1f}s")  # fmt: skip
    mean_dec = stats.decode_row_steps / stats.decode_steps if stats.decode_steps else 0.0
    mean_pre = stats.prefill_rows / stats.prefill_batches if stats.prefill_batches else 0.0
    print(f"[{name}] {prompts} prompts, {stats.gen_calls} generate batches ({stats.gen_rows} rows), "
          f"{stats.score_calls} scoring batches ({stats.score_jobs} jobs), mean prompt batch {mean_pre:.1f} rows, "
          f"{stats.decode_steps} decoding steps of mean batch {mean_dec:.1f} rows")  # fmt: skip
    non_decode = max(wall - stats.decode_s, 1e-9)
    rates = {
        "prompt_tok_s": prompt_tokens / non_decode,
        "gen_tok_s": generated / wall if wall else 0.0,
    }
    print(f"[{name}] prompt tokens computed {prompt_tokens} = {rates['prompt_tok_s']:.1f} tok/s of non-decoding time; "
          f"generated {generated} = {rates['gen_tok_s']:.1f} tok/s of wall time")  # fmt: skip
    return rates
