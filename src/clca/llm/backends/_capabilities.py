"""What an OpenAI-compatible server accepts, found out on first use and remembered per server.

Two capabilities matter to clca:

- the **structured-output form**: `json_schema` (OpenAI/vLLM/SGLang `response_format`), `json_object_schema`
  (`{"type": "json_object", "schema": ...}`, llama-cpp-python), `json_object` (JSON mode without a schema)
  or `prompt` (no `response_format`: the schema in words in the prompt, re-asked on validation errors);
- the **scoring path** of `score_options`: `prompt_logprobs` (vLLM), `completions_echo` (`/v1/completions`
  with `echo` + `logprobs` over a prompt that clca renders with the model's chat template), `top_logprobs`
  (first token only) or `none`.

The forms are tried in that order; a *deterministic refusal* (see `refusal`) moves to the next one and is
never retried with the same body. The result is kept per (server URLs, model) for the process, so the
teacher, judge and annotator on one server probe once, and `record()` gives what the run database and the
report show.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StructuredForm = Literal["json_schema", "json_object_schema", "json_object", "prompt"]
ScoringPath = Literal["prompt_logprobs", "completions_echo", "top_logprobs", "none"]
STRUCTURED_ORDER: tuple[StructuredForm, ...] = ("json_schema", "json_object_schema", "json_object", "prompt")
SCORING_ORDER: tuple[ScoringPath, ...] = ("prompt_logprobs", "completions_echo", "top_logprobs")

# a 5xx whose message says the request itself is wrong (llama-cpp-python answers pydantic errors with 500)
_REFUSAL_WORDS = re.compile(
    r"unsupported|not supported|invalid|input should be|extra inputs|extra fields|not permitted|"
    r"unrecognized|unknown (?:field|parameter|argument)|unexpected (?:field|keyword|argument)|validation error",
    re.I,
)
# a field path named in the message: `response_format.type`, `'response_format'`, ('body', 'response_format', 'type')
_DOTTED = re.compile(r"\b([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)\b", re.I)
_TUPLE_LOC = re.compile(r"\(\s*'body'\s*,\s*((?:'[^']+'\s*,?\s*)+)\)")
_QUOTED = re.compile(r"['\"`]([a-z_][a-z0-9_]*)['\"`]", re.I)
_FIELD_WORD = re.compile(r"(?:field|parameter|argument|key)s?\s*:?\s*['\"`]?([a-z_][a-z0-9_.]*)", re.I)
_RETRYABLE_4XX = {408, 409, 429}
KNOWN_FIELDS = (
    "response_format",
    "json_schema",
    "schema",
    "prompt_logprobs",
    "continue_final_message",
    "add_generation_prompt",
    "top_logprobs",
    "logprobs",
    "echo",
    "seed",
    "stop",
    "n",
)


@dataclass(frozen=True)
class Refusal:
    """A deterministic refusal: the same body would be refused again, so it is never resent."""

    status: int
    field: str | None  # the request field the server named, when it named one
    message: str

    def mentions(self, *names: str) -> bool:
        text = f"{self.field or ''} {self.message}".lower()
        return any(n.lower() in text for n in names)


def refusal(status: int, message: str) -> Refusal | None:
    """A Refusal when an HTTP error is deterministic: any 4xx except 408/409/429, or a 5xx whose body
    names an unsupported or invalid field. Transient errors (timeouts, 429, other 5xx) give None."""
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return Refusal(status, refused_field(message), message)
    if status >= 500 and _REFUSAL_WORDS.search(message) and refused_field(message) is not None:
        return Refusal(status, refused_field(message), message)
    return None


def refused_field(message: str) -> str | None:
    """The request field an error message names (`response_format.type`, `logprobs`, ...), if any."""
    m = _TUPLE_LOC.search(message)
    if m:
        return ".".join(re.findall(r"'([^']+)'", m.group(1)))
    for m in _DOTTED.finditer(message):
        if m.group(1).split(".")[0].lower() in KNOWN_FIELDS:
            return m.group(1)
    for pat in (_FIELD_WORD, _QUOTED):
        for m in pat.finditer(message):
            if m.group(1).split(".")[0].lower() in KNOWN_FIELDS:
                return m.group(1)
    low = message.lower()
    return next((f for f in KNOWN_FIELDS if re.search(rf"\b{f}\b", low)), None)


@dataclass
class ServerCapabilities:
    """What one server (model at its base URLs) was found to accept; None = not found out yet."""

    model: str
    base_urls: list[str]
    structured: StructuredForm | None = None
    scoring: ScoringPath | None = None
    chat_template: str | None = None  # where the template of the completions echo path came from
    refused: dict[str, str] = field(default_factory=dict)  # form/path -> the server's one-line refusal
    probed_at: float = field(default_factory=time.time)

    def record(self) -> dict[str, Any]:
        """JSON-ready view for the run database and the report (never holds a key)."""
        return asdict(self)

    def line(self) -> str:
        """One line for `clca chat -v` and logs."""
        parts = [
            f"structured output: {self.structured or 'not probed'}",
            f"scoring: {self.scoring or 'not probed'}",
        ]
        if self.chat_template:
            parts.append(f"chat template: {self.chat_template}")
        if self.refused:
            parts.append("refused: " + "; ".join(f"{k} ({v})" for k, v in self.refused.items()))
        return f"{self.model} at {', '.join(self.base_urls)}: " + ", ".join(parts)


_lock = threading.Lock()
_known: dict[tuple[str, tuple[str, ...]], ServerCapabilities] = {}


def capabilities_for(model: str, base_urls: list[str]) -> ServerCapabilities:
    """The shared capability record of a server (created empty on first use; one per process)."""
    key = (model, tuple(base_urls))
    with _lock:
        if key not in _known:
            _known[key] = ServerCapabilities(model=model, base_urls=list(base_urls))
        return _known[key]


def forget_server(base_url: str) -> None:
    """Drop what is remembered about every model served at base_url (the server behind it changed)."""
    with _lock:
        for key in [k for k in _known if base_url in k[1]]:
            del _known[key]


def forget_all() -> None:
    """Drop every remembered server (tests that restart a server on a reused port)."""
    with _lock:
        _known.clear()


def capability_records(llm: Any) -> list[dict[str, Any]]:
    """The capability records of a (wrapped) backend: walks `.inner` down to an `openai:` model."""
    seen = 0
    while llm is not None and seen < 8:
        caps = llm.__dict__.get("capabilities") if hasattr(llm, "__dict__") else None
        if isinstance(caps, ServerCapabilities):
            return [caps.record()]
        llm = llm.__dict__.get("inner") if hasattr(llm, "__dict__") else None
        seen += 1
    return []
