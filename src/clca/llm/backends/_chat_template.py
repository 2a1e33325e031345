"""The chat template clca applies itself for the `/v1/completions` echo scoring path.

`/v1/completions` takes raw text, so clca must render the conversation exactly as the server's chat
endpoint would. The template comes from the `chat_template` option of an `openai:` model string:

- `auto` (default): the server's own template when it publishes one (`GET /props`, llama.cpp's native
  server); otherwise none is known and the echo path is skipped (top_logprobs is used instead);
- `embedded`: the embedded model's template (SmolLM2, as in its GGUF file);
- a Hugging Face model or tokenizer directory (its `chat_template.jinja` or `tokenizer_config.json`),
  or a `.jinja` file;
- `none`: never use the echo path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ConfigError


def load_template(source: str) -> tuple[str, dict[str, str]] | None:
    """(template text, special tokens) for a `chat_template` option value other than auto/none."""
    if source in ("auto", "none", ""):
        return None
    if source == "embedded":
        from .._embedded import embedded_model_dir

        return _from_dir(embedded_model_dir())
    p = Path(source).expanduser()
    if p.is_dir():
        return _from_dir(p)
    if p.is_file():
        return p.read_text(encoding="utf-8"), {}
    raise ConfigError(f"chat_template={source!r}: not 'auto', 'none', 'embedded', a model directory or a .jinja file")


def _from_dir(d: Path) -> tuple[str, dict[str, str]]:
    cfg: dict[str, Any] = {}
    if (d / "tokenizer_config.json").is_file():
        cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    special = {k: _token_text(cfg.get(k)) for k in ("bos_token", "eos_token")}
    if (d / "chat_template.jinja").is_file():
        return (d / "chat_template.jinja").read_text(encoding="utf-8"), special
    tpl = cfg.get("chat_template")
    if isinstance(tpl, str) and tpl:
        return tpl, special
    raise ConfigError(f"chat_template: {d} has no chat template (chat_template.jinja or tokenizer_config.json)")


def _token_text(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("content") or "")
    return str(v or "")


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg: str) -> None:
        raise ValueError(f"chat template: {msg}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_prompt(template: str, special: dict[str, str], messages: Sequence[dict[str, str]]) -> str:
    """The conversation as the model sees it, ending with the assistant's generation prompt."""
    return str(
        _compiled(template).render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=True,
            bos_token=special.get("bos_token", ""),
            eos_token=special.get("eos_token", ""),
        )
    )


async def server_template(base_url: str, key: str, timeout: float) -> tuple[str, dict[str, str]] | None:
    """The template a server publishes at GET /props (llama.cpp's native server); None for most servers."""
    import re

    import httpx

    root = re.sub(r"/v1/?$", "", base_url)
    try:
        async with httpx.AsyncClient(timeout=min(timeout, 10.0)) as client:
            r = await client.get(f"{root}/props", headers={"Authorization": f"Bearer {key}"})
        data = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    tpl = data.get("chat_template") if isinstance(data, dict) else None
    if not isinstance(tpl, str) or not tpl:
        return None
    return tpl, {k: str(data.get(k) or "") for k in ("bos_token", "eos_token")}
