"""Merge a LoRA adapter into its base model and save safetensors that vLLM can serve."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .._files import follow_umask
from ..errors import ConfigError
from ._model import ADAPTER_RECORD, adapter_base_model, resolve_model_dir


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Base model + adapter -> a plain HF model directory (safetensors, tokenizer, chat template)."""
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        if (adapter / ADAPTER_RECORD).is_file():
            shutil.copy(adapter / ADAPTER_RECORD, tmp / "clca_merged_from.json")
        follow_umask(tmp, recursive=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
