"""The running decoding batch's KV cache: rows join and leave without copying the rows that stay.

Each layer's keys and values live in buffers shaped [row capacity, kv heads, column capacity, head dim].
The live rows are the first `rows` slots and the batch's columns are [lo, hi): every row ends at column
hi (rows are left-padded), so a decoding step writes one column for all rows. A joining row is written
into the next free slot, ending at hi; a row longer than the batch's width moves lo to the left, into
room kept free there. A leaving row's slot is filled by moving one row from the end, so a finished row
costs one row's copy, not the whole batch's (as `torch.index_select` of the batch did: every join and
every finished row copied all of it). Buffers grow by doubling when rows or room run out.

Padding columns hold zeros (masked, but they must not hold NaN garbage: a masked position's value still
enters the attention product with weight zero). Buffers are allocated empty: a column becomes visible only
when it is written (a step, a joining row) or zeroed (a joining row's padding, a widening batch's new columns).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ._kvcache import Segs, new_cache


class SlotLayer(DynamicLayer):
    """One layer's keys and values of the decoding batch: views of the live rows and columns of buffers."""

    def __init__(self, kbuf: torch.Tensor, vbuf: torch.Tensor, rows: int, lo: int, hi: int) -> None:
        super().__init__()
        self.device = kbuf.device
        self.is_initialized = True
        self._kbuf, self._vbuf = kbuf, vbuf
        self.rows, self.lo, self.hi = rows, lo, hi
        self.view()

    def view(self) -> None:
        self.keys = self._kbuf[: self.rows, :, self.lo : self.hi]
        self.values = self._vbuf[: self.rows, :, self.lo : self.hi]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = key_states.shape[-2]
        if self.hi + q > self._kbuf.shape[2]:
            self.realloc(self._kbuf.shape[0], self.lo, max(q, self.hi - self.lo))
        self._kbuf[: self.rows, :, self.hi : self.hi + q] = key_states
        self._vbuf[: self.rows, :, self.hi : self.hi + q] = value_states
        self.hi += q
        self.view()
        return self.keys, self.values

    def realloc(self, row_cap: int, left: int, right: int) -> None:
        """New buffers with room for row_cap rows, `left` free columns before lo and `right` after hi."""
        b, h, _, d = self._kbuf.shape
        width = self.hi - self.lo
        kbuf = self._kbuf.new_empty((row_cap, h, left + width + right, d))  # only what becomes visible is
        vbuf = self._vbuf.new_empty((row_cap, h, left + width + right, d))  # written (or zeroed) first
        kbuf[: self.rows, :, left : left + width] = self._kbuf[: self.rows, :, self.lo : self.hi]
        vbuf[: self.rows, :, left : left + width] = self._vbuf[: self.rows, :, self.lo : self.hi]
        self._kbuf, self._vbuf, self.lo, self.hi = kbuf, vbuf, left, left + width
        self.view()

    def write_row(self, slot: int, segs: Segs, layer: int, length: int) -> None:
        """Put a row's KV (segments in token order, `length` tokens) into `slot`, ending at hi; zeros before."""
        start = self.hi - length
        self._kbuf[slot, :, self.lo : start].zero_()
        self._vbuf[slot, :, self.lo : start].zero_()
        for seg in segs:
            k, v = seg[layer]
            m = k.shape[-2]
            self._kbuf[slot, :, start : start + m] = k[0]
            self._vbuf[slot, :, start : start + m] = v[0]
            start += m

    def move_rows(self, dst: list[int], src: list[int]) -> None:
        if dst:
            d, s = torch.tensor(dst), torch.tensor(src)
            self._kbuf[d, :, self.lo : self.hi] = self._kbuf[s, :, self.lo : self.hi]
            self._vbuf[d, :, self.lo : self.hi] = self._vbuf[s, :, self.lo : self.hi]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        raise NotImplementedError("rows leave a slot batch through SlotBatch.retire")

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a decoding batch is never cropped")


def slots_supported(config: Any) -> bool:
    """Whether the model's cache is plain full-attention layers (sliding-window layers keep their own)."""
    return all(type(layer) is DynamicLayer for layer in new_cache(config).layers)


class SlotBatch:
    """The decoding batch's cache (`cache`, a transformers DynamicCache of SlotLayers) and its rows."""

    joinable = True

    def __init__(self, config: Any, rows: list[Segs], lengths: list[int], reserve: int) -> None:
        template = next(segs[0] for segs in rows if segs)
        width = max(lengths)
        cap = max(8, 1 << (len(rows) - 1).bit_length())
        self.cache = DynamicCache(config=config)
        self.layers: list[SlotLayer] = []
        for k0, v0 in template:
            shape = (cap, k0.shape[1], width // 2 + width + 2 * reserve + 64, k0.shape[3])  # room on both sides
            start = width + width // 2
            self.layers.append(SlotLayer(k0.new_empty(shape), v0.new_empty(shape), 0, start, start))
        self.cache.layers = list(self.layers)
        self.join(rows, lengths, reserve)

    @property
    def rows(self) -> int:
        return self.layers[0].rows

    @property
    def width(self) -> int:
        return self.layers[0].hi - self.layers[0].lo

    def join(self, rows: list[Segs], lengths: list[int], reserve: int) -> None:
        """Add rows (segmented KV of `lengths` tokens) after the live ones, with room for `reserve` more steps."""
        first = self.layers[0]
        n, cap = first.rows, first._kbuf.shape[0]
        need = max(lengths)
        left, right = first.lo, first._kbuf.shape[2] - first.hi
        grow_rows = n + len(rows) > cap
        if grow_rows or need - self.width > left or reserve > right:
            # room to spare, so that the next joins (longer prompts, as conversations grow) fit without a copy
            row_cap = max(cap, 1 << (n + len(rows) - 1).bit_length())
            room_left = max(0, need - self.width) + max(need, self.width) // 2
            room_right = reserve + max(reserve, 64)
            for layer in self.layers:
                layer.realloc(row_cap, room_left, room_right)
        for layer in self.layers:
            if need > layer.hi - layer.lo:  # the batch widens into the free room on the left
                lo = layer.hi - need
                layer._kbuf[:n, :, lo : layer.lo].zero_()  # the live rows' new padding columns
                layer._vbuf[:n, :, lo : layer.lo].zero_()
                layer.lo = lo
            layer.rows = n + len(rows)
        for li, layer in enumerate(self.layers):
            for i, (segs, length) in enumerate(zip(rows, lengths, strict=True)):
                layer.write_row(n + i, segs, li, length)
            layer.view()

    def retire(self, keep: list[int], width: int) -> list[int]:
        """Keep rows `keep` (ascending) and the last `width` columns; returns each new row's old index.

        Rows kept below the new row count stay where they are; the slots of rows that left are filled with
        kept rows from the end. Columns before the last `width` (padding only) are just left behind.
        """
        n = len(keep)
        kept = set(keep)
        holes = [j for j in range(n) if j not in kept]
        movers = [j for j in keep if j >= n]
        for layer in self.layers:
            layer.move_rows(holes, movers)
        order = list(range(n))
        for h, m in zip(holes, movers, strict=True):
            order[h] = m
        for layer in self.layers:
            layer.rows = n
            layer.lo = max(layer.lo, layer.hi - width)
            layer.view()
        return order

    def mask(self, lengths: torch.Tensor, extra: int = 0) -> torch.Tensor:
        """Attention mask over the batch's columns plus `extra` new ones, for rows of `lengths` tokens after them."""
        w = self.width + extra
        return (torch.arange(w, device=lengths.device)[None, :] >= (w - lengths)[:, None]).long()
