"""Choosing each row's next token: constraint masks (allowed tokens, banned first tokens, no EOS), greedy
decoding, and seeded inverse-CDF sampling with temperature and top-p.

A sampled row draws its uniforms from a generator seeded by (request seed, sample index) only, one per
step, so its tokens never depend on which other rows share its batch or when it joined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import torch

from ._rows import GenRow


class Choosing(Protocol):
    """What the sampler reads of a decoding row."""

    row: GenRow
    uniforms: torch.Tensor | None
    step: int  # tokens chosen so far


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


def choose(live: Sequence[Choosing], logits: torch.Tensor, eos: torch.Tensor | None) -> torch.Tensor:
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
        chosen[sel] = _inverse_cdf(probs, top_p, u)
    return chosen


#: candidates sorted per row before falling back to sorting the whole vocabulary
TOP_CANDIDATES = 256


def _inverse_cdf(probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token per row by inverse-CDF sampling over the probabilities sorted in descending order, after
    dropping the tokens outside the top-p nucleus (the first token always kept).

    Sorting the whole vocabulary every step was a tenth of a 32-row decoding step; the answer only depends
    on the sorted head while the nucleus, or the point the draw lands on, lies within it. So the top
    TOP_CANDIDATES are sorted first, and only rows whose draw lands beyond them sort everything.
    """
    k = min(TOP_CANDIDATES, probs.shape[1])
    sp, si = probs.topk(k, dim=-1)  # sorted, descending
    head_cum = sp.cumsum(-1)
    in_nucleus = (head_cum - sp) < top_p[:, None]
    in_nucleus[:, 0] = True
    cut = ~in_nucleus[:, -1]  # the nucleus ends inside the head: the rest of the vocabulary is dropped anyway
    kept = sp.masked_fill(~in_nucleus, 0.0)
    cum = kept.cumsum(-1)
    # no nucleus (top_p 1): the total is the mass of the whole vocabulary; a nucleus reaching beyond the
    # head has a total only a full sort gives
    whole = top_p >= 1.0
    total = torch.where(cut, cum[:, -1], probs.sum(-1))
    target = u * total
    inside = (cut | whole) & (target <= cum[:, -1])
    out = si.gather(1, torch.searchsorted(cum, target[:, None]).clamp(max=k - 1)).squeeze(1)
    rest = (~inside).nonzero().flatten()
    if len(rest):  # the draw lands beyond the head: sort everything for those rows
        out[rest] = _full_sort_draw(probs[rest], top_p[rest], u[rest])
    return out


def _full_sort_draw(probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    sp, si = probs.sort(dim=-1, descending=True)
    drop = (sp.cumsum(-1) - sp) >= top_p[:, None]
    drop[:, 0] = False
    cum = sp.masked_fill(drop, 0.0).cumsum(-1)
    k = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(1)).clamp(max=sp.shape[1] - 1)
    return si.gather(1, k).squeeze(1)
