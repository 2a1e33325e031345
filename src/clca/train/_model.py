"""Model strings -> local directories, and the record that ties an adapter to its base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelStringError

ADAPTER_RECORD = "clca_adapter.json"


def resolve_model_dir(spec: str) -> str:
    """'embedded' -> the embedded model's safetensors dir; 'hf:PATH' -> PATH (a local dir or a Hub id).

    Inference options after '?' (batching, caches) do not concern training and are ignored here.
    """
    spec = spec.strip().partition("?")[0]
    if "+lora:" in spec:
        raise ModelStringError(
            f"{spec!r}: train on a base model, not on base+adapter (merge it first: clca train merge ADAPTER --out DIR)"
        )
    if spec == "embedded":
        from ..llm import embedded_model_dir

        return str(embedded_model_dir())
    if spec.startswith("hf:"):
        path = spec[3:]
        if not path:
            raise ModelStringError(f"{spec!r}: expected hf:PATH")
        return path
    raise ModelStringError(f"cannot train {spec!r}: expected 'embedded' or 'hf:PATH'")


def write_adapter_record(adapter_dir: Path, base_model: str, base_dir: str, extra: dict[str, Any]) -> None:
    record = {"base_model": base_model.strip().partition("?")[0], "base_model_dir": base_dir, **extra}
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
            return f"hf:{base}"
    raise ModelStringError(f"{d}: not a PEFT adapter directory (no adapter_config.json)")
