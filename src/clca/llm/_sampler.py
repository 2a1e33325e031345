"""Choosing the next token of every decoding row: constraints (allowed/banned ids, ignore_eos), then greedy
for temperature 0, else seeded inverse-CDF sampling with top-p (one pre-drawn uniform per row and step, so
batch composition never changes a row's tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def choose_tokens(live: Sequence[Any], logits: torch.Tensor, step: int, eos: torch.Tensor | None) -> torch.Tensor:
    """Next token per row. `live[j]` has `.row` (a GenRow) and `.uniforms` (its pre-drawn uniforms or None)."""
    masked = None
    for j, lv in enumerate(live):
        r = lv.row
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
            [float(live[j].uniforms[min(step, len(live[j].uniforms) - 1)]) for j in samp],
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
