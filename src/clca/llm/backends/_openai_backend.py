"""The `openai:` kind of model string -> `OpenAIModel` (the module `_spec.BACKENDS` registers for it)."""

from __future__ import annotations

from typing import Any

from .._spec import ModelSpec, openai_config
from ._openai import OpenAIModel
from ._openai_config import OpenAIConfig, api_key_for


def build(spec: ModelSpec, options: dict[str, Any]) -> OpenAIModel:
    return OpenAIModel(openai_config(spec, OpenAIConfig, **options))


def check(spec: ModelSpec) -> None:
    api_key_for(openai_config(spec, OpenAIConfig))  # a missing key fails here, before any run directory exists
