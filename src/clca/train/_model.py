"""Model strings -> local directories, and the record that ties an adapter to its base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelStringError
from ..llm import ModelSpec

ADAPTER_RECORD = "clca_adapter.json"


def resolve_model_dir(spec: str) -> str:
    """'embedded' -> the embedded model's safetensors dir; 'hf:PATH' -> PATH, a local directory (as for
    inference: models are never downloaded at run time).

    Inference options after '?' (batching, caches) do not concern training and are ignored here.
    """
    parsed = ModelSpec.parse(spec)
    if parsed.adapter is not None:
        raise ModelStringError(
            f"{parsed.without_options().format()!r}: train on a base model, not on base+adapter "
            "(merge it first: clca train merge ADAPTER --out DIR)"
        )
    if not parsed.is_local:
        raise ModelStringError(f"cannot train {parsed.format()!r}: expected 'embedded' or 'hf:PATH'")
    return str(parsed.local_model_dir())


def write_adapter_record(adapter_dir: Path, base_model: str, base_dir: str, extra: dict[str, Any]) -> None:
    base = ModelSpec.parse(base_model).without_options().format()
    record = {"base_model": base, "base_model_dir": base_dir, **extra}
    (adapter_dir / ADAPTER_RECORD).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The model string of an adapter's base model ('embedded' or 'hf:PATH'), from the adapter directory.

    Reads clca's own record first; for adapters trained elsewhere, PEFT's adapter_config.json.
    Used to resolve 'lora:DIR' model strings.
    """
    d = Path(adapter_dir)
    rec = d / ADAPTER_RECORD
    if rec.is_file():
        return str(json.loads(rec.read_text(encoding="utf-8"))["base_model"])
    cfg = d / "adapter_config.json"
    if cfg.is_file():
        base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if base:
            return ModelSpec("hf", str(base)).format()
    raise ModelStringError(f"{d}: not a PEFT adapter directory (no adapter_config.json)")
