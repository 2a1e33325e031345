"""Merge a LoRA adapter into its base model and save safetensors that vLLM can serve."""

from __future__ import annotations

import shutil
from pathlib import Path

from .._files import atomic_dir
from .._outputs import check_output
from ..errors import ConfigError
from ._model import ADAPTER_RECORD, adapter_base_model, resolve_model_dir


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Base model + adapter -> a plain HF model directory (safetensors, tokenizer, chat template)."""
    check_output(out_dir, kind="dir", inputs=[adapter_dir], overwrite=overwrite, own=("clca_merged_from.json",))
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(adapter_dir)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    base_dir = resolve_model_dir(adapter_base_model(adapter))
    if not (adapter / "adapter_model.safetensors").is_file():
        raise ConfigError(f"{adapter}: no adapter_model.safetensors (only safetensors weights are loaded)")
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tok_src = adapter if (adapter / "tokenizer_config.json").is_file() else Path(base_dir)
    tok = AutoTokenizer.from_pretrained(str(tok_src))
    with atomic_dir(out, overwrite, command="train merge") as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        if (adapter / ADAPTER_RECORD).is_file():
            shutil.copy(adapter / ADAPTER_RECORD, tmp / "clca_merged_from.json")
    return out
