"""Loading a causal LM and its tokenizer for the in-process engine (weights as safetensors only)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Loaded:
    """A model ready for the engine, with what the engine needs to know of it."""

    model: Any
    tokenizer: Any
    config: Any
    device: torch.device
    dtype: torch.dtype
    cache_kw: str  # transformers 5.x renamed `past_key_values` to `cache` in forward()
    vocab_size: int
    packed_lm_head: bool
    eos_ids: list[int]
    pad_id: int


def load(
    model_dir: Path, adapter_dir: Path | None = None, device: str | None = None, dtype: str | None = None
) -> Loaded:
    """The model at `model_dir` (plus a PEFT adapter), on `device` (default: CUDA if available) in `dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ...memory import bound_heap, tune_malloc

    tune_malloc()  # one arena, large blocks given back when freed (clca.memory)
    bound_heap()  # where memory is short: freed KV caches go back to the OS (clca.memory)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    dev = torch.device(device)
    tdtype = getattr(torch, dtype)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=tdtype, use_safetensors=True)
        # transformers 5.x renamed `past_key_values` to `cache` in forward(); support both
        params = inspect.signature(model.forward).parameters
        cache_kw = "cache" if "cache" in params else "past_key_values"
        if adapter_dir is not None:
            from peft import PeftModel

            from ...errors import ModelStringError

            if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():  # never a pickled .bin
                raise ModelStringError(f"{adapter_dir}: no adapter_model.safetensors")
            model = PeftModel.from_pretrained(model, str(adapter_dir))
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model = model.to(dev).eval()
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    packed = pack_lm_head(model) if dev.type == "cpu" and tdtype == torch.float32 else False
    tok = tokenizer
    eos: set[int] = set()
    for src in (getattr(model, "generation_config", None), model.config, tok):
        val = getattr(src, "eos_token_id", None) if src is not None else None
        if isinstance(val, int):
            eos.add(val)
        elif isinstance(val, (list, tuple)):
            eos.update(int(v) for v in val)
    eos_ids = sorted(eos)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
    return Loaded(model, tokenizer, model.config, dev, tdtype, cache_kw, vocab_size, packed, eos_ids, int(pad))


def pack_lm_head(model: Any) -> bool:
    """On CPU in float32, run the output projection through oneDNN with a prepacked weight.

    The LM head is the largest matrix of a small model (vocabulary x hidden); MKL's sgemm handles its
    tall shape poorly on this kind of CPU, oneDNN with a packed weight computes it in 0.6x the time at
    32 rows and 0.55x at one row (benchmarks/bench_batching.py). The packed copy costs the weight's
    size in memory once; the model's own weight (tied to the embeddings) is left as it is. Returns
    whether the head was packed (not for PEFT-wrapped or non-Linear heads, or without oneDNN).
    """
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or not torch.backends.mkldnn.is_available():
        return False
    try:
        from torch.utils.mkldnn import MkldnnLinear

        packed = MkldnnLinear(head, torch.float32)
        owner = next(m for m in model.modules() if any(c is head for c in m.children()))
        name = next(n for n, c in owner.named_children() if c is head)
    except (ImportError, RuntimeError, StopIteration):
        return False
    setattr(owner, name, packed)
    return True
