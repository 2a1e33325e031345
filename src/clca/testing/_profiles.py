"""Server profiles for the fault server: what real OpenAI-compatible servers accept and refuse.

A profile screens each request before it reaches the inner model (answering the refusal the real
server gives), rewrites what the real server would do differently (a JSON mode instead of a schema,
fields it silently ignores) and strips from the answer what it would not return. Every fallback of
the `openai:` backend is thereby exercised in CI without compiling a server:

| profile     | structured output taken                           | scoring paths offered               |
|-------------|---------------------------------------------------|-------------------------------------|
| `vllm`      | json_schema (and every JSON mode)                 | prompt_logprobs, echo, top_logprobs |
| `llamacpp`  | json_object + schema (json_schema: HTTP 500)      | completions echo, top_logprobs      |
| `ollama`    | json_schema, json_object (schema key ignored)     | none (logprob fields ignored)       |
| `json_mode` | json_object only (422 on unknown keys)            | top_logprobs                        |
| `chat_only` | none (400 on any field beyond the basic ones)     | none                                |

`llamacpp` follows what llama-cpp-python's server was measured to do (HTTP 500 naming
`response_format.type` for json_schema; `{"type": "json_object", "schema": ...}` honoured; vLLM's
prompt_logprobs ignored; `/v1/completions` with `echo` and `logprobs`). `ollama` models Ollama's OpenAI
layer before it returned logprobs; `json_mode` and `chat_only` are minimal servers (OpenAI's 2023 JSON
mode; chat only). The completions echo endpoint needs an inner model with a tokenizer (`encode`,
`score_ids`: the embedded or an `hf:` model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

ProfileName = Literal["vllm", "llamacpp", "ollama", "json_mode", "chat_only"]
_BASIC = frozenset({"model", "messages", "temperature", "top_p", "max_tokens", "n", "stop", "seed", "stream"})
_VLLM_EXTRA = ("prompt_logprobs", "continue_final_message", "add_generation_prompt")


@dataclass(frozen=True)
class ServerProfile:
    name: ProfileName
    json_schema: bool  # response_format type json_schema taken
    json_object: bool  # response_format type json_object taken
    object_schema: bool  # the `schema` key inside json_object constrains the answer (llama-cpp-python)
    prompt_logprobs: bool
    top_logprobs: bool
    completions_echo: bool
    completions: bool  # the /v1/completions endpoint exists
    strict: frozenset[str] | None  # when set, any other top-level field is refused
    strict_status: int = 400

    def screen(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """The refusal (status, message) the real server gives this chat request, or None."""
        if self.strict is not None:
            extra = sorted(k for k in body if k not in self.strict)
            if extra:
                if self.strict_status == 422:
                    return 422, f"{extra[0]}: Extra inputs are not permitted"
                return 400, f"unsupported field: {extra[0]}"
        rf = body.get("response_format")
        if not isinstance(rf, dict):
            return None
        kind = rf.get("type")
        if kind == "json_schema" and not self.json_schema:
            if self.name == "llamacpp":  # llama-cpp-python validates with pydantic and answers 500
                return 500, "response_format.type: Input should be 'text' or 'json_object'"
            return 400, "response_format.type: json_schema is not supported; use json_object"
        if kind == "json_object" and not self.json_object:
            return 400, "response_format.type: json_object is not supported"
        if kind == "json_object" and "schema" in rf and self.strict is not None and not self.object_schema:
            return 422, "response_format.schema: Extra inputs are not permitted"
        return None

    def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as the inner `clca serve` app should see it to behave like this server."""
        body = dict(body)
        if not self.prompt_logprobs:
            for k in _VLLM_EXTRA:
                body.pop(k, None)
            msgs = body.get("messages") or []
            if msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
                body["messages"] = msgs[:-1]  # the continued message is ignored: a plain reply is generated
        if not self.top_logprobs:
            body.pop("logprobs", None)
            body.pop("top_logprobs", None)
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "json_object":
            if self.object_schema and isinstance(rf.get("schema"), dict):  # constrained like json_schema
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "o", "schema": rf["schema"]}}
            else:  # JSON mode: the reply follows the prompt (which carries the schema)
                body.pop("response_format")
        return body

    def clean(self, data: Any) -> Any:
        """Strip from the answer what this server does not return."""
        if isinstance(data, dict):
            if not self.prompt_logprobs:
                data.pop("prompt_logprobs", None)
            if not self.top_logprobs:
                for ch in data.get("choices") or []:
                    if isinstance(ch, dict):
                        ch["logprobs"] = None
        return data


PROFILES: dict[str, ServerProfile] = {
    "vllm": ServerProfile("vllm", True, True, True, True, True, True, True, None),
    "llamacpp": ServerProfile("llamacpp", False, True, True, False, True, True, True, None),
    "ollama": ServerProfile("ollama", True, True, False, False, False, False, True, None),
    "json_mode": ServerProfile(
        "json_mode",
        False,
        True,
        False,
        False,
        True,
        False,
        False,
        _BASIC | {"response_format", "logprobs", "top_logprobs"},
        422,
    ),
    "chat_only": ServerProfile("chat_only", False, False, False, False, False, False, False, _BASIC),
}


def get_profile(name: str) -> ServerProfile:
    if name not in PROFILES:
        raise ValueError(f"unknown server profile {name!r}; profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


async def completions(profile: ServerProfile, inner: Any, served: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /v1/completions as the profile's server answers it (echo + logprobs of the prompt tokens)."""
    if not profile.completions:
        return 404, {"error": {"message": "Not Found", "type": "not_found", "code": 404}}
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return 400, {"error": {"message": "prompt: a string is required", "type": "invalid_request_error"}}
    wants = bool(body.get("echo")) and body.get("logprobs") is not None
    encode, score_ids, tok = (getattr(inner, a, None) for a in ("encode", "score_ids", "tokenizer"))
    if wants and profile.completions_echo:
        if encode is None or score_ids is None or tok is None:
            err = {"message": "logprobs: this model offers no logprobs", "type": "invalid_request_error"}
            return 400, {"error": err}
        ids = list(encode(prompt))
        (scored,) = await score_ids(ids[:1], [ids[1:]])
        tokens = [tok.decode([i]) for i in ids]
        offsets, pos = [], 0
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        logprobs: Any = {
            "tokens": tokens,
            "token_logprobs": [None] + [float(t.logprob) for t in scored],
            "text_offset": offsets,
            "top_logprobs": None,
        }
        text = prompt
    else:
        logprobs, text = None, ""
    choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "length"}
    out = {"id": "cmpl-emulated", "object": "text_completion", "model": served, "choices": [choice]}
    return 200, out


def body_key(body: bytes) -> str:
    """Canonical identity of a request body (refused bodies must never come again)."""
    try:
        return json.dumps(json.loads(body), sort_keys=True)
    except ValueError:
        return body.decode("latin-1")
