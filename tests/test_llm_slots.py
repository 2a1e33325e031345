"""The decoding batch's slot cache: rows join and leave while the others keep exactly their keys and values."""

from __future__ import annotations

import torch
from transformers import LlamaConfig

from clca.llm.engine._slots import SlotBatch, slots_supported

CONFIG = LlamaConfig(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, hidden_size=8)
H, D = 2, 4


def _row(g: torch.Generator, n: int) -> list:
    """A prompt's KV as two segments (as the prefix cache hands them out): per layer (keys, values)."""
    a = n // 3
    full = [(torch.randn(1, H, n, D, generator=g), torch.randn(1, H, n, D, generator=g)) for _ in range(2)]
    return [[(k[:, :, :a], v[:, :, :a]) for k, v in full], [(k[:, :, a:], v[:, :, a:]) for k, v in full]]


def _whole(segs: list) -> list:
    return [(torch.cat([s[li][0] for s in segs], 2), torch.cat([s[li][1] for s in segs], 2)) for li in range(2)]


def test_rows_join_and_leave_and_the_others_keep_their_kv() -> None:
    assert slots_supported(CONFIG)
    g = torch.Generator().manual_seed(0)
    lengths = [5, 3, 7]
    rows = [_row(g, n) for n in lengths]
    ref = [_whole(r) for r in rows]  # per live row: per layer (keys, values) of its real tokens
    batch = SlotBatch(CONFIG, rows, lengths, reserve=2)
    buffer = batch.layers[0]._kbuf

    def check() -> None:
        assert batch.rows == len(ref)
        for li, layer in enumerate(batch.layers):
            assert layer.keys.shape == (len(ref), H, batch.width, D)
            for i, kv in enumerate(ref):
                n = kv[li][0].shape[2]
                assert torch.equal(layer.keys[i, :, batch.width - n :], kv[li][0][0])
                assert torch.equal(layer.values[i, :, batch.width - n :], kv[li][1][0])
                assert not layer.keys[i, :, : batch.width - n].any()  # padding is zeros, never garbage
        lens = torch.tensor([kv[0][0].shape[2] for kv in ref])
        mask = batch.mask(lens)
        assert mask.tolist() == [[int(c >= batch.width - n) for c in range(batch.width)] for n in lens.tolist()]

    def step() -> None:  # one decoding step: every layer gets one new column for every row
        for li, layer in enumerate(batch.layers):
            k, v = torch.randn(len(ref), H, 1, D, generator=g), torch.randn(len(ref), H, 1, D, generator=g)
            layer.update(k, v)
            for i in range(len(ref)):
                ref[i][li] = (torch.cat([ref[i][li][0], k[i : i + 1]], 2), torch.cat([ref[i][li][1], v[i : i + 1]], 2))

    check()
    step()
    check()
    assert batch.layers[0]._kbuf is buffer  # written in place
    order = batch.retire([0, 2], width=8)  # row 1 (the shortest) finished
    assert order == [0, 2]  # row 2 moved into the free slot 1
    ref = [ref[j] for j in order]
    check()
    new = [_row(g, 12), _row(g, 2)]  # a row longer than the batch: the batch widens to the left
    batch.join(new, [12, 2], reserve=3)
    ref += [_whole(r) for r in new]
    check()
    for _ in range(4):  # more steps than the reserve: the buffer grows
        step()
    check()
    order = batch.retire([1, 3], width=max(kv[0][0].shape[2] for kv in (ref[1], ref[3])))
    ref = [ref[j] for j in order]
    check()
    many = [_row(g, 4) for _ in range(9)]  # beyond the row capacity: the buffer doubles
    batch.join(many, [4] * 9, reserve=1)
    ref += [_whole(r) for r in many]
    check()
    step()
    check()
