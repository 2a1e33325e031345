"""Model strings -> backends. See the package docstring for the syntax."""

from __future__ import annotations

from typing import Any

from ..errors import ModelStringError
from ._protocol import LLM


def load_model(spec: str = "embedded", **options: Any) -> LLM:
    """Build the backend a model string names. Heavy imports happen only here, never at import time."""
    spec = spec.strip()
    if spec == "mock":
        from ._mock import MockLLM

        return MockLLM()
    if spec == "embedded" or spec.startswith("embedded+") or spec.startswith("hf:"):
        from ._hf import HFModel

        return HFModel.from_spec(spec, **options)
    if spec.startswith("openai:"):
        from ._openai import OpenAIModel

        return OpenAIModel.from_spec(spec, **options)
    raise ModelStringError(
        f"unknown model string {spec!r}; expected 'embedded', 'hf:PATH[+lora:DIR]' or 'openai:MODEL@BASE_URL'"
    )
