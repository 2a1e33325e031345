"""The engine's decoding loop: one left-padded batch that rows join and leave at every step.

Rows arrive with their prompts; the prompts are computed (`_prompt_states.PromptStates`, reusing cached
prefixes) and their KV joins the running batch's cache (`_slots.SlotBatch`). Each step chooses
one token per row (`_sampler.choose`), retires rows that finished (their outputs delivered at once, so
their callers can send the next request while the others decode) or whose callers are gone, and runs one
forward for the rows left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .._protocol import TokenLogprob
from ._kvcache import PlainBatch
from ._rows import EngineStats, GenOut, GenRow
from ._sampler import choose, uniforms
from ._slots import SlotBatch


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


class _Clock:
    """Where one `decode` call's time goes that is not decoding: joining rows (prompt forwards, the prefix
    cache) and the caller's `admit` (scoring jobs run between steps count their own time)."""

    def __init__(self, admit: Callable[[int], list[tuple[Any, GenRow]]] | None) -> None:
        self.admit = admit
        self.joining = 0.0
        self.outside = 0.0

    def take(self, n_live: int) -> list[tuple[Any, GenRow]]:
        """New rows from `admit` (none without one), its time counted as outside."""
        if self.admit is None:
            return []
        t = time.perf_counter()
        got = self.admit(n_live)
        self.outside += time.perf_counter() - t
        return got


class DecodeLoop:
    """Generation for `Engine` (a mixin: the engine provides the model, the prompt states and the counters)."""

    stats: EngineStats
    device: torch.device
    config: Any
    tokenizer: Any
    eos_ids: list[int]
    slots: bool  # whether the model's cache allows the slot batch (`_slots.slots_supported`)
    prompt_states: Callable[[list[list[int]]], list[Any]]
    _forward: Callable[..., torch.Tensor]
    _piece: Callable[[int], str]
    _top: Callable[[torch.Tensor, int], list[tuple[str, float]]]

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
        self.stats.gen_calls += 1
        eos = torch.tensor(self.eos_ids, dtype=torch.long, device=self.device) if self.eos_ids else None
        clock = _Clock(admit)
        live: list[_Live] = []
        batch: Any = None  # SlotBatch | PlainBatch
        next_pos = logits = None
        pending = first
        while True:
            if pending:
                live, batch, next_pos, logits = self._timed_join(pending, live, batch, next_pos, logits, clock)
                pending = []
            self._cancel(live, cancelled)
            if any(lv.finish for lv in live):
                live, next_pos, logits, _ = self._retire(live, batch, next_pos, logits, done)
            if not live:  # the batch is empty: new rows start a new one, or decoding ends
                pending = clock.take(0)
                if not pending:
                    break
                batch = None
                continue
            chosen = self._step(live, logits, eos)
            if any(lv.finish for lv in live):
                live, next_pos, logits, order = self._retire(live, batch, next_pos, logits, done)
                chosen = chosen[torch.tensor(order, dtype=torch.long, device=self.device)] if live else chosen[:0]
            if live and batch.joinable:  # else new rows wait for an empty batch
                pending = clock.take(len(live))
            if live:
                attn = batch.mask(next_pos + 1, 1)
                logits = self._forward(chosen[:, None], attn, next_pos[:, None], batch.cache, 1)[:, -1, :]
                next_pos = next_pos + 1
        now = time.perf_counter()
        self.stats.decode_s += now - t_start - clock.joining - clock.outside
        self.stats.busy_s += now - t_start - clock.outside

    def _timed_join(
        self, rows: list[tuple[Any, GenRow]], live: list[_Live], batch: Any, next_pos: Any, logits: Any, clock: _Clock
    ) -> tuple[list[_Live], Any, torch.Tensor, torch.Tensor]:
        """`_join`, its time counted as joining (not decoding) and, less its prompt work, as `join_s`."""
        st = self.stats
        t_join, pre = time.perf_counter(), st.prefill_s + st.cache_s
        joined, batch, next_pos, logits = self._join(rows, live, batch, next_pos, logits)
        spent = time.perf_counter() - t_join
        clock.joining += spent
        st.join_s += spent - (st.prefill_s + st.cache_s - pre)
        return live + joined, batch, next_pos, logits

    def _cancel(self, live: list[_Live], cancelled: Callable[[Any], bool] | None) -> None:
        """Mark the rows whose callers are gone; they leave the batch with the finished ones."""
        if cancelled is None:
            return
        for lv in live:
            if not lv.finish and cancelled(lv.key):
                lv.finish = "cancelled"
                self.stats.cancelled_rows += 1

    def _step(self, live: list[_Live], logits: torch.Tensor, eos: torch.Tensor | None) -> torch.Tensor:
        """Choose and take one token for every live row; returns the chosen tokens."""
        chosen = choose(live, logits, eos)
        self._take_tokens(live, chosen, logits)
        st = self.stats
        st.decode_steps += 1
        st.decode_row_steps += len(live)
        st.generated_tokens += len(live)
        return chosen

    def _join(
        self, rows: list[tuple[Any, GenRow]], live: list[_Live], batch: Any, next_pos: Any, logits: Any
    ) -> tuple[list[_Live], Any, torch.Tensor, torch.Tensor]:
        """Compute the prompts of new rows and add them to the running batch (after the rows in it)."""
        self.stats.gen_rows += len(rows)
        states = self.prompt_states([r.prompt_ids for _, r in rows])
        lengths = [len(r.prompt_ids) for _, r in rows]
        reserve = max(r.max_tokens for _, r in rows)
        reserve = max([reserve, *(lv.row.max_tokens - len(lv.ids) for lv in live)])
        segs = [st[0] for st in states]
        if batch is None:
            kind = SlotBatch if self.slots else PlainBatch
            batch = kind(self.config, segs, lengths, reserve)
        else:
            batch.join(segs, lengths, reserve)
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
        return joined, batch, next_pos, logits

    def _retire(
        self,
        live: list[_Live],
        batch: Any,
        next_pos: Any,
        logits: Any,
        done: Callable[[list[tuple[Any, GenOut]]], None],
    ) -> tuple[list[_Live], Any, Any, list[int]]:
        """Deliver finished rows and drop them (and columns only padding is left in) from the batch; the
        rows left may come in a new order (returned: each new row's old index)."""
        keep = [j for j, lv in enumerate(live) if not lv.finish]
        finished = [(lv.key, self._finish(lv)) for lv in live if lv.finish and lv.finish != "cancelled"]
        if finished:
            done(finished)
        if not keep:
            return [], None, None, []
        width = int(next_pos[torch.tensor(keep, dtype=torch.long, device=self.device)].max())
        order = batch.retire(keep, width)
        sel = torch.tensor(order, dtype=torch.long, device=self.device)
        return [live[j] for j in order], next_pos[sel], logits[sel], order

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
