"""Model strings -> backends. The syntax is `ModelSpec`'s (see `_spec.py` and docs/backends-remote.md).

    embedded[?key=value&...]               the embedded SmolLM2-135M-Instruct
    embedded+lora:DIR                      ... with a PEFT adapter
    hf:PATH[+lora:DIR][?key=value&...]     a local Hugging Face causal LM directory
    openai:MODEL@BASE_URL[,BASE_URL2,...][?key=value&...]
                                           an OpenAI-compatible server; several URLs = replicas
    mock                                   the scripted MockLLM (never cached)

Options (in the string after `?`, or as keyword arguments of `load_model`; keyword arguments win):
  openai: api_key_env, concurrency, timeout, max_retries, backoff_base, backoff_max, replica_cooldown,
          scoring (auto | prompt_logprobs | top_logprobs), json_schema (true | false).
  embedded / hf: device, dtype, max_batch, max_batch_tokens, max_kv_mb, prefix_cache_mb, torch_threads,
          ignore_eos
          (see `HFOptions`).

Each backend is built by the module `_spec.BACKENDS` registers for its kind, imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._protocol import LLM
from ._spec import ModelSpec, backend, is_loopback, parse_query, validation_message

__all__ = ["is_loopback", "load_model", "parse_query", "validation_message"]


def load_model(spec: str | ModelSpec = "embedded", *, cache: bool | str | Path = True, **options: Any) -> LLM:
    """Build the backend a model string names, wrapped in the response cache unless `cache=False`.

    cache: True = the shared cache (`cache_dir()/responses.sqlite`), a path = that SQLite file,
    False = no cache. The `mock` backend is never cached. Heavy imports happen only here.
    """
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    llm = backend(parsed.kind, "build")(parsed, options)
    if cache is False or parsed.kind == "mock":
        return llm
    from ._cache import CachedLLM

    return CachedLLM(llm, path=None if cache is True else Path(cache))
