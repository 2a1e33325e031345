"""Top-p sampling by inverse CDF: the answer from the sorted head equals the answer from sorting everything
(`_full_sort_draw`, the sampler as it was before the head shortcut)."""

from __future__ import annotations

import pytest
import torch

from clca.llm.engine._sampler import TOP_CANDIDATES, _full_sort_draw, _inverse_cdf


@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])  # flat (falls back to sorting) to peaked (head only)
@pytest.mark.parametrize("top_p", [0.5, 0.95, 1.0])
def test_head_sampling_equals_sorting_the_whole_vocabulary(scale: float, top_p: float) -> None:
    g = torch.Generator().manual_seed(int(scale * 100 + top_p * 10))
    probs = torch.softmax(torch.randn(48, 8192, generator=g) * scale, dim=-1).double()
    u = torch.rand(48, generator=g, dtype=torch.float64)
    u[0], u[1] = 0.0, 1.0 - 1e-12  # the ends of the draw
    tp = torch.full((48,), top_p, dtype=torch.float64)
    assert torch.equal(_inverse_cdf(probs, tp, u), _full_sort_draw(probs, tp, u))


def test_a_vocabulary_smaller_than_the_head_and_mixed_rows() -> None:
    g = torch.Generator().manual_seed(7)
    small = torch.softmax(torch.randn(5, TOP_CANDIDATES // 2, generator=g), dim=-1).double()
    tp = torch.tensor([0.3, 0.9, 1.0, 0.99, 0.5], dtype=torch.float64)
    u = torch.rand(5, generator=g, dtype=torch.float64)
    assert torch.equal(_inverse_cdf(small, tp, u), _full_sort_draw(small, tp, u))
