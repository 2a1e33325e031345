"""What `clca serve` refuses before any model work: limits (tokens, prompt, body, n), fields it cannot
honour, a missing or wrong API key; plus cancelling the work of clients that went away and answering
upstream errors (proxy mode) without naming the upstream server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import ClcaError

if TYPE_CHECKING:
    from .._protocol import LLM

# request objects are `_server.ChatRequest`, typed Any here: _server imports this module
log = logging.getLogger("clca.llm.server")
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of `clca serve` (refused up front with 400 / 413 / 401 otherwise)."""

    max_tokens_limit: int = 8192  # most tokens one completion may ask for (max_tokens / max_completion_tokens)
    max_prompt_tokens: int = 8192  # most prompt tokens (counted with the backend's tokenizer when it has one)
    max_body_mb: float = 8.0  # largest request body
    max_n: int = 64  # most completions per request (the eval asks for `samples` answers in one request)
    api_key: str | None = None  # when set, requests need `Authorization: Bearer KEY`

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


#: request fields clca serve cannot honour: refused with 400 rather than silently ignored
UNSUPPORTED_FIELDS = ("tools", "tool_choice", "functions", "function_call", "audio", "prediction", "logit_bias")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Guard:
    """ASGI middleware: the API key (constant-time comparison) and the body size, before anything is parsed.
    The body is read here (up to the limit) and replayed; later reads still see a client's disconnect."""

    def __init__(self, app: Any, limits: ServeLimits, error: Any) -> None:
        self.app, self.lim, self.error = app, limits, error

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        lim = self.lim
        if lim.api_key is not None and scope.get("path") != "/health":
            auth = headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), lim.api_key.encode()):
                msg = "missing or wrong API key (send Authorization: Bearer KEY)"
                await self.error(401, msg)(scope, receive, send)
                return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        too_big = f"request body over the limit of {lim.max_body_mb:g} MB (--max-body-mb)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > lim.max_body_bytes:
            await self.error(413, too_big)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > lim.max_body_bytes:
                await self.error(413, too_big)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def check_limits(llm: LLM, req: Any, lim: ServeLimits) -> None:
    """Refuse up front what the server cannot or will not do (400), before any model work."""
    present = set(req.model_fields_set) | set(req.model_extra or {})
    for f in UNSUPPORTED_FIELDS:
        value = getattr(req, f, None) if f in type(req).model_fields else (req.model_extra or {}).get(f)
        if f in present and value not in (None, [], {}, "none"):
            raise BadRequest(f"{f} is not supported by clca serve")
    asked = req.max_completion_tokens or req.max_tokens
    if asked is None:  # not asked: the default, within the limit
        req.max_tokens = min(DEFAULT_MAX_TOKENS, lim.max_tokens_limit)
    elif asked > lim.max_tokens_limit:
        raise BadRequest(
            f"max_tokens {asked} is over this server's limit of {lim.max_tokens_limit} (--max-tokens-limit)"
        )
    if req.n > lim.max_n:
        raise BadRequest(f"n {req.n} is over this server's limit of {lim.max_n} completions per request")


async def check_prompt(llm: LLM, req: Any, lim: ServeLimits) -> None:
    count = await asyncio.to_thread(_prompt_tokens, llm, req)  # tokenizing is CPU work: off the event loop
    if count is not None and count > lim.max_prompt_tokens:
        raise BadRequest(
            f"the prompt has {count} tokens, over this server's limit of {lim.max_prompt_tokens} (--max-prompt-tokens)"
        )


def _prompt_tokens(llm: LLM, req: Any) -> int | None:
    """Prompt tokens with the backend's own tokenizer (in-process models); None for proxies (upstream checks)."""
    prompt_text, encode = getattr(llm, "prompt_text", None), getattr(llm, "encode", None)
    if not callable(prompt_text) or not callable(encode):
        return None
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        return len(encode(prompt_text(messages)))
    except ValueError:
        return None


async def until_disconnect(work: Any, request: Any, poll_s: float = 0.25) -> dict[str, Any] | None:
    """Run work; if the client disconnects first, cancel it (queued model work is dropped) and return None."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                log.info("client disconnected; its request was cancelled")
                return None
    finally:
        if not task.done():
            task.cancel()


def upstream_status(e: ClcaError) -> tuple[int, str]:
    """The status and message a backend error is answered with: an upstream server's 4xx keeps its status
    (401/403 become 502: the proxy's own key was refused, not the client's), 5xx and unreachable become
    502, and no upstream URL is named."""
    import re

    from ...failures import http_status

    status = http_status(e)
    text = re.sub(r"\b[a-z][a-z0-9+.-]*://\S+?(?=[\s:;,)]|$)", "the upstream server", e.one_line())
    if status in (401, 403):
        return 502, f"the upstream server refused this server's credentials (HTTP {status})"
    if status is not None and 400 <= status < 500:
        return status, text
    return 502 if status is not None or "gave up" in text else 500, text
