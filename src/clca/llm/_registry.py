"""Model strings -> backends. See the package docstring (and docs/backends-remote.md) for the syntax.

    embedded[?key=value&...]               the embedded SmolLM2-135M-Instruct
    embedded+lora:DIR                      ... with a PEFT adapter
    hf:PATH[+lora:DIR][?key=value&...]     a local Hugging Face causal LM directory
    openai:MODEL@BASE_URL[,BASE_URL2,...][?key=value&...]
                                           an OpenAI-compatible server; several URLs = replicas
    mock                                   the scripted MockLLM (never cached)

Options (in the string after `?`, or as keyword arguments of `load_model`; keyword arguments win):
  openai: api_key_env, concurrency, timeout, max_retries, backoff_base, backoff_max, replica_cooldown,
          scoring (auto | prompt_logprobs | top_logprobs), json_schema (true | false).
  embedded / hf: device, dtype, max_batch, max_batch_tokens, prefix_cache_mb, torch_threads, ignore_eos
          (see `HFOptions`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError

from ..errors import ModelStringError
from ._protocol import LLM

_OPENAI_SYNTAX = "expected 'openai:MODEL@http(s)://HOST[:PORT]/v1[,http(s)://HOST2...][?option=value&...]'"


def load_model(spec: str = "embedded", *, cache: bool | str | Path = True, **options: Any) -> LLM:
    """Build the backend a model string names, wrapped in the response cache unless `cache=False`.

    cache: True = the shared cache (`cache_dir()/responses.sqlite`), a path = that SQLite file,
    False = no cache. The `mock` backend is never cached. Heavy imports happen only here.
    """
    llm = _build(spec.strip(), options)
    if cache is False or spec.strip() == "mock":
        return llm
    from ._cache import CachedLLM

    return CachedLLM(llm, path=None if cache is True else Path(cache))


def _build(spec: str, options: dict[str, Any]) -> LLM:
    if not spec:
        raise ModelStringError("empty model string; expected 'embedded', 'hf:PATH[+lora:DIR]' or 'openai:MODEL@URL'")
    if spec == "mock":
        if options:
            raise ModelStringError(f"the mock backend takes no options (got {', '.join(sorted(options))})")
        from ._mock import MockLLM

        return MockLLM()
    model = spec.partition("?")[0]
    if model.partition("+")[0] == "embedded" or model.startswith("hf:"):
        _check_local_spec(model)
        from ._hf import HFModel

        return HFModel.from_spec(spec, **options)
    if spec.startswith("openai:"):
        from ._openai import OpenAIModel

        return OpenAIModel(parse_openai_spec(spec, **options))
    raise ModelStringError(
        f"unknown model string {spec!r}; expected 'embedded', 'embedded+lora:DIR', 'hf:PATH[+lora:DIR]', "
        "'openai:MODEL@BASE_URL' or 'mock'"
    )


def _check_local_spec(spec: str) -> None:
    """Syntax checks shared by embedded/hf strings (the HF backend checks that the paths exist)."""
    head, _, rest = spec.partition("+")
    if head.startswith("hf:") and not head[3:].strip():
        raise ModelStringError(f"model string {spec!r} names no path; expected 'hf:PATH[+lora:DIR]'")
    if head != "embedded" and not head.startswith("hf:"):
        raise ModelStringError(f"unknown model string {spec!r}; expected 'embedded[+lora:DIR]' or 'hf:PATH'")
    if rest and (not rest.startswith("lora:") or not rest[5:].strip()):
        raise ModelStringError(f"model string {spec!r}: expected '+lora:ADAPTER_DIR' after the model")


def is_loopback(url: str) -> bool:
    """True when the URL's host is localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_openai_spec(spec: str, **options: Any) -> Any:
    """Parse `openai:MODEL@URL[,URL...][?k=v&...]` into an `OpenAIConfig` (keyword options win)."""
    from ._openai import OpenAIConfig

    body = spec[len("openai:") :]
    body, _, query = body.partition("?")
    at = min((i for i in (body.find("@http://"), body.find("@https://")) if i >= 0), default=-1)
    if at <= 0:
        raise ModelStringError(f"bad model string {spec!r}: {_OPENAI_SYNTAX}")
    model, urls = body[:at].strip(), [u.strip() for u in body[at + 1 :].split(",")]
    base_urls = [_normalise_url(u, spec) for u in urls]
    if len(set(base_urls)) != len(base_urls):
        raise ModelStringError(f"bad model string {spec!r}: a base URL is listed twice")
    string_opts: dict[str, Any] = {}
    if query:
        string_opts = parse_query(query, spec)
    try:
        return OpenAIConfig(model=model, base_urls=base_urls, **{**string_opts, **options})
    except ValidationError as e:
        raise ModelStringError(validation_message(spec, e, OpenAIConfig)) from None


def parse_query(query: str, spec: str) -> dict[str, str]:
    """The `key=value&...` options after a model string's `?` (values still strings)."""
    try:
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ModelStringError(f"bad model string {spec!r}: options must look like '?key=value&key2=value2'") from None


def validation_message(spec: str, e: ValidationError, known: Any) -> str:
    """One line naming the first bad option of a model string (`known`: the options model's class)."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(options)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown option (known: {', '.join(sorted(known.model_fields))})"
    return f"bad model string {spec!r}: option {where}: {msg}"


def _normalise_url(url: str, spec: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelStringError(f"bad model string {spec!r}: {url!r} is not an http(s) URL; {_OPENAI_SYNTAX}")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise ModelStringError(f"bad model string {spec!r}: {url!r} has an invalid port") from None
    url = url.rstrip("/")
    if parts.path in ("", "/"):
        url += "/v1"
    return url
