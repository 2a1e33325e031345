"""The training loss's memory (issue 29): clca narrows the tiles of TRL's fused LM head (`LM_HEAD_TILE_COLUMNS`)
and the loss, the log-probabilities and the gradients stay those of TRL's default width.

The memory this saves is measured in `benchmarks/bench_memory.py` (the training workload), not here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from clca.train._trainer import LM_HEAD_TILE_COLUMNS, narrow_lm_head_tiles

trl_utils = pytest.importorskip("trl.trainer.utils")
DEFAULT_COLUMNS = 32768  # TRL's own width (trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE)


@pytest.fixture
def restore_width() -> Iterator[None]:
    before = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    yield
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = before


def test_the_locked_trl_takes_the_width(restore_width: None) -> None:
    # a TRL without this attribute would make the setting a silent no-op: this test is what says so
    assert isinstance(trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, int)
    assert narrow_lm_head_tiles() is True
    assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == LM_HEAD_TILE_COLUMNS < DEFAULT_COLUMNS


def _loss_and_grads(columns: int) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # a vocabulary wider than both tiles, so both widths fold several tiles (49,152: the embedded model's)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    narrow_lm_head_tiles(columns)
    ids = torch.randint(0, cfg.vocab_size, (3, 40))
    labels = ids.clone()
    labels[:, :25] = -100  # the prompt: only the answer's tokens count, as in assistant-only training
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    layer = model.model.layers[0].self_attn.q_proj.weight
    return out.loss.item(), out.log_probs.detach(), out.entropy.detach(), layer.grad.detach().clone()


def test_narrow_tiles_give_trls_loss_log_probs_and_gradients(restore_width: None) -> None:
    wide = _loss_and_grads(DEFAULT_COLUMNS)
    narrow = _loss_and_grads(LM_HEAD_TILE_COLUMNS)
    assert narrow[0] == pytest.approx(wide[0], rel=1e-6)
    for a, b in zip(narrow[1:], wide[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert wide[3].abs().sum() > 0  # the gradient is real, not zero on both sides
