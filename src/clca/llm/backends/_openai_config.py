"""The settings of an `openai:` model string (`OpenAIConfig`) and where its API key comes from."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import BackendError
from .._spec import is_loopback


class OpenAIConfig(BaseModel):
    """Settings of an `openai:` model string (each can be given as `?key=value` in the string)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="model name the server expects in requests")
    base_urls: list[str] = Field(min_length=1, description="one base URL per replica, e.g. http://host:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="environment variable holding the key")
    concurrency: int = Field(16, ge=1, description="requests in flight at most, over all replicas")
    timeout: float = Field(120.0, gt=0, description="seconds per HTTP request")
    max_retries: int = Field(5, ge=0, description="retries after the first attempt")
    backoff_base: float = Field(0.5, ge=0, description="first backoff in seconds; doubles per retry")
    backoff_max: float = Field(30.0, ge=0, description="cap of one backoff (and of an honoured Retry-After)")
    replica_cooldown: float = Field(30.0, ge=0, description="seconds a failing replica is skipped")
    scoring: Literal["auto", "prompt_logprobs", "completions_echo", "top_logprobs"] = "auto"
    json_schema: bool = Field(True, description="use response_format in structured() (false: the schema in words)")
    chat_template: str = Field(
        "auto", description="template for /v1/completions echo scoring: auto, none, embedded, a model dir or .jinja"
    )


def api_key_for(cfg: OpenAIConfig) -> str:
    """The API key from the environment; a dummy value for loopback-only servers when unset."""
    key = os.environ.get(cfg.api_key_env)
    if key:
        return key
    if all(is_loopback(u) for u in cfg.base_urls):
        return "EMPTY"
    raise BackendError(
        f"environment variable {cfg.api_key_env} is not set; it must hold the API key for {cfg.base_urls[0]} "
        "(choose another variable with ?api_key_env=NAME)"
    )
