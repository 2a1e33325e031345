"""The `openai:` kind of model string -> `OpenAIModel` (the factory and check `_spec.BACKENDS` names)."""

from __future__ import annotations

from typing import Any

from ._openai import OpenAIConfig, OpenAIModel, api_key_for
from ._spec import ModelSpec, openai_config


def parse_openai_spec(spec: str | ModelSpec, **options: Any) -> OpenAIConfig:
    """Parse `openai:MODEL@URL[,URL...][?k=v&...]` into an `OpenAIConfig` (keyword options win)."""
    return openai_config(spec, OpenAIConfig, **options)


def build(spec: ModelSpec, options: dict[str, Any]) -> OpenAIModel:
    return OpenAIModel(parse_openai_spec(spec, **options))


def check(spec: ModelSpec) -> None:
    api_key_for(parse_openai_spec(spec))  # a missing key fails here, before any run directory exists
