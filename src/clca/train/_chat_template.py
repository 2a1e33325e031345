"""Chat templates with `{% generation %}` markers, so that TRL can mask the loss to assistant tokens.

TRL's `assistant_only_loss=True` asks the tokenizer for an assistant-token mask, which only
templates with `{% generation %}...{% endgeneration %}` blocks can give. SmolLM2's ChatML template
has none, and TRL ships no training version of it; clca ships one (rendering byte-identical text,
checked at load time) and falls back to TRL's own patched templates for the model families it knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_DIR = Path(__file__).parent / "chat_templates"


def has_generation_markers(template: str) -> bool:
    return re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


_PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello!"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A?"},
        {"role": "assistant", "content": "B."},
        {"role": "user", "content": "C?"},
        {"role": "assistant", "content": "D."},
    ],
]


def renders_like(tokenizer: Any, candidate: str, reference: str) -> bool:
    """True when both templates render the probe conversations to the same text."""
    for msgs in _PROBES:
        for gen in (False, True):
            conv = msgs[:-1] if gen else msgs
            try:
                a = tokenizer.apply_chat_template(
                    conv, chat_template=candidate, tokenize=False, add_generation_prompt=gen
                )
                b = tokenizer.apply_chat_template(
                    conv, chat_template=reference, tokenize=False, add_generation_prompt=gen
                )
            except Exception:  # a template may reject a probe shape (e.g. system role); not a match then
                return False
            if a != b:
                return False
    return True


def builtin_templates() -> dict[str, str]:
    return {p.stem.removesuffix("_training"): p.read_text(encoding="utf-8") for p in sorted(_DIR.glob("*.jinja"))}


def training_chat_template(tokenizer: Any, override: str | Path | None = None) -> str:
    """The tokenizer's chat template with generation markers (or `override`, a Jinja file)."""
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise ConfigError(f"chat_template: file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if not has_generation_markers(text):
            raise ConfigError(
                f"chat_template {path}: needs {{% generation %}}...{{% endgeneration %}} around assistant text"
            )
        return text
    current = tokenizer.chat_template
    if isinstance(current, dict):
        current = current.get("default")
    if not current:
        raise ConfigError(
            "the model's tokenizer has no chat template; set chat_template: FILE (Jinja with generation markers)"
        )
    if has_generation_markers(current):
        return current
    for text in builtin_templates().values():
        if renders_like(tokenizer, text, current):
            return text
    from trl.chat_template_utils import get_training_chat_template

    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        patched = None
    if patched:
        return patched
    raise ConfigError(
        "the model's chat template has no {% generation %} markers and neither clca nor TRL knows a training "
        "version of it; write one (the same template with {% generation %}...{% endgeneration %} around the "
        "assistant content and end-of-turn token) and set chat_template: FILE"
    )


def assistant_mask(tokenizer: Any, messages: list[dict[str, str]], template: str) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its assistant mask (1 = trained), as TRL computes them."""
    out = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return list(out["input_ids"]), list(out["assistant_masks"])
