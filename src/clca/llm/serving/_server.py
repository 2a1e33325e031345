"""`clca serve`: any `LLM` behind an OpenAI-compatible HTTP API (FastAPI + uvicorn).

Endpoints: GET /v1/models, POST /v1/chat/completions with temperature, top_p, max_tokens
(or max_completion_tokens), stop, seed, n, logprobs + top_logprobs, response_format
(json_schema / json_object) and vLLM's prompt_logprobs with continue_final_message.

Requests run concurrently into the backend (an in-process model batches them). Logprob features
need a backend implementing `LogprobLLM`; others answer 400. With `prompt_logprobs` the response
holds entries only for the tokens of the final (continued) assistant message: the list starts with
one `null` standing for all earlier prompt tokens, and dictionary keys are token positions within
that message (the backend does not expose token ids). The completion of such a request is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request as _Request  # resolved by FastAPI from this module's globals

from ...errors import ClcaError, StructuredOutputError
from .._protocol import LLM, GenParams, LogprobLLM, Message, TokenLogprob
from ..structured import check_json
from ._completions import CompletionError, CompletionRequest, complete
from ._serve_guard import (
    DEFAULT_MAX_TOKENS,
    Guard,
    ServeLimits,
    check_limits,
    check_prompt,
    until_disconnect,
    upstream_status,
)
from ._serve_guard import BadRequest as _BadRequest

log = logging.getLogger("clca.llm.server")
__all__ = ["DEFAULT_MAX_TOKENS", "ServeLimits", "create_app", "run_server", "serve_in_thread"]


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for p in self.content:
            if p.get("type") != "text":
                raise _BadRequest(f"message content part of type {p.get('type')!r} is not supported (text only)")
            parts.append(str(p.get("text", "")))
        return "".join(parts)


class ChatRequest(BaseModel):
    """The accepted subset of the OpenAI chat-completions request, plus vLLM's extras."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    stream: bool = False
    prompt_logprobs: int | None = Field(None, ge=0)
    add_generation_prompt: bool = True
    continue_final_message: bool = False

    def params(self) -> GenParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
            stop=stop,
            seed=self.seed,
            n=self.n,
        )


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def create_app(llm: LLM, served_name: str | None = None, limits: ServeLimits | None = None) -> Any:
    """The FastAPI application serving `llm` under `served_name` (default: its model_id)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    name = served_name or llm.model_id
    lim = limits or ServeLimits()
    app = FastAPI(title="clca serve", docs_url=None, redoc_url=None, openapi_url=None)  # no schema route: 404

    def error(status: int, message: str, kind: str | None = None) -> JSONResponse:
        kind = kind or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    app.add_middleware(Guard, limits=lim, error=error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(400, f"{loc}: {first.get('msg')}")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "clca"}]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: _Request) -> JSONResponse:
        if req.model not in (None, name, llm.model_id):
            return error(404, f"model {req.model!r} not found; this server serves {name!r}", "not_found_error")
        try:
            check_limits(llm, req, lim)
            await check_prompt(llm, req, lim)
            body = await until_disconnect(_complete(llm, req), request)
        except _BadRequest as e:
            return error(e.status, str(e))
        except StructuredOutputError as e:
            return error(422, e.one_line(), "structured_output_error")
        except ValueError as e:
            return error(400, str(e))
        except ClcaError as e:
            status, message = upstream_status(e)
            return error(status, message, "backend_error" if status >= 500 else None)
        if body is None:  # the client went away: its work was cancelled, nobody reads an answer
            return error(499, "client closed the request")
        body["model"] = name
        return JSONResponse(body)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: _Request) -> JSONResponse:
        if req.model not in (None, name, llm.model_id):
            return error(404, f"model {req.model!r} not found; this server serves {name!r}", "not_found_error")
        try:
            body = await until_disconnect(complete(llm, req, name, lim), request)
        except CompletionError as e:
            return error(400, str(e))
        except ClcaError as e:
            status, message = upstream_status(e)
            return error(status, message, "backend_error" if status >= 500 else None)
        if body is None:  # the client went away: its work was cancelled
            return error(499, "client closed the request")
        return JSONResponse(body)

    return app


async def _complete(llm: LLM, req: ChatRequest) -> dict[str, Any]:
    if req.stream:
        raise _BadRequest("stream=true is not supported by clca serve")
    messages: list[Message] = [{"role": m.role, "content": m.text()} for m in req.messages]  # type: ignore[misc]
    params = req.params()
    if req.continue_final_message or req.prompt_logprobs is not None:
        return await _prompt_logprobs(llm, req, messages)
    if not req.add_generation_prompt:
        raise _BadRequest("add_generation_prompt=false is only supported with continue_final_message")
    choices: list[dict[str, Any]] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    if req.response_format and req.response_format.get("type") in ("json_schema", "json_object"):
        schema = _response_schema(req.response_format)
        single = GenParams(**{**params.__dict__, "n": 1})
        objs = await asyncio.gather(*(llm.structured(messages, schema, _nth(single, i)) for i in range(req.n)))
        for i, obj in enumerate(objs):
            choices.append(_choice(i, json.dumps(obj.model_dump(mode="json"), ensure_ascii=False), "stop"))
    elif req.response_format and req.response_format.get("type") not in (None, "text"):
        raise _BadRequest(f"response_format type {req.response_format.get('type')!r} is not supported")
    elif req.logprobs:
        lp_llm = _logprob_llm(llm, "logprobs")
        single = GenParams(**{**params.__dict__, "n": 1})
        outs = await asyncio.gather(
            *(lp_llm.generate_with_logprobs(messages, _nth(single, i), req.top_logprobs or 0) for i in range(req.n))
        )
        for i, (text, toks) in enumerate(outs):
            finish = "length" if len(toks) >= params.max_tokens else "stop"
            choice = _choice(i, text, finish)
            choice["logprobs"] = {"content": [_token_entry(t) for t in toks]}
            choices.append(choice)
            usage["completion_tokens"] += len(toks)
    else:
        res = await llm.chat(messages, params)
        for i, text in enumerate(res.texts):
            finish = res.finish_reasons[i] if i < len(res.finish_reasons) and res.finish_reasons[i] else "stop"
            choices.append(_choice(i, text, finish))
        usage = {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens}
    return _envelope(choices, usage)


async def _prompt_logprobs(llm: LLM, req: ChatRequest, messages: list[Message]) -> dict[str, Any]:
    if not (req.continue_final_message and req.prompt_logprobs is not None):
        raise _BadRequest("continue_final_message is only supported together with prompt_logprobs (and vice versa)")
    if req.add_generation_prompt:
        raise _BadRequest("continue_final_message needs add_generation_prompt=false")
    if req.prompt_logprobs != 0:
        raise _BadRequest("only prompt_logprobs=0 is supported by clca serve")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"]:
        raise _BadRequest("continue_final_message needs a non-empty final assistant message")
    lp_llm = _logprob_llm(llm, "prompt_logprobs")
    toks = await lp_llm.continuation_logprobs(messages[:-1], messages[-1]["content"])
    entries: list[dict[str, Any] | None] = [None]
    for i, t in enumerate(toks):
        rank = 1 + sum(1 for _tok, lp in t.top if lp > t.logprob) if t.top else None
        entries.append({str(i): {"logprob": t.logprob, "rank": rank, "decoded_token": t.token}})
    body = _envelope([_choice(0, "", "length")], {"prompt_tokens": len(toks), "completion_tokens": 0})
    body["prompt_logprobs"] = entries
    return body


def _logprob_llm(llm: LLM, what: str) -> LogprobLLM:
    if not isinstance(llm, LogprobLLM):
        raise _BadRequest(f"{what} is not supported by this backend ({llm.model_id})")
    return llm


def _nth(params: GenParams, i: int) -> GenParams:
    return params if params.seed is None or i == 0 else GenParams(**{**params.__dict__, "seed": params.seed + i})


def _choice(index: int, text: str, finish: str) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish,
        "logprobs": None,
    }


def _token_entry(t: TokenLogprob) -> dict[str, Any]:
    return {
        "token": t.token,
        "logprob": t.logprob,
        "bytes": list(t.token.encode()),
        "top_logprobs": [{"token": s, "logprob": lp, "bytes": list(s.encode())} for s, lp in t.top],
    }


def _envelope(choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "choices": choices,
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


# -- response_format -> a pydantic type the backend's structured() accepts --------------------------
def _response_schema(rf: dict[str, Any]) -> type[BaseModel]:
    if rf.get("type") == "json_object":
        js: dict[str, Any] = {"type": "object"}
        name = "json_object"
    else:
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise _BadRequest("response_format.json_schema.schema must be a JSON schema object")
        js, name = spec["schema"], str(spec.get("name") or "answer")
    if js.get("type", "object") != "object":
        raise _BadRequest("response_format: only schemas whose root is an object are supported")
    return schema_model(name, js)


def schema_model(name: str, js: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model class whose JSON schema is `js` and which validates against it."""

    class _Dyn(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _check(cls, data: Any) -> Any:
            problem = check_json(data, js, js)
            if problem:
                raise ValueError(problem)
            return data

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
            return js

    _Dyn.__name__ = _Dyn.__qualname__ = name
    return _Dyn


# -- running the server -----------------------------------------------------------------------------
def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def run_server(
    llm: LLM,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str | None = None,
    limits: ServeLimits | None = None,
) -> None:
    """Serve in the foreground until interrupted (used by `clca serve`)."""
    import uvicorn

    from ...errors import ConfigError

    try:
        sock = _bind(host, port)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    with contextlib.suppress(Exception):  # load the tokenizer now, not on the first request
        getattr(llm, "tokenizer", None)
    server = uvicorn.Server(uvicorn.Config(create_app(llm, served_name, limits), log_level="info"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def serve_in_thread(
    llm: LLM,
    host: str = "127.0.0.1",
    port: int = 0,
    served_name: str | None = None,
    limits: ServeLimits | None = None,
) -> Iterator[str]:
    """Serve `llm` from a background thread on a free port; yields the base URL (".../v1")."""
    import uvicorn

    sock = _bind(host, port)
    port = sock.getsockname()[1]
    ready = threading.Event()

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            ready.set()

    server = _Server(uvicorn.Config(create_app(llm, served_name, limits), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="clca-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"clca serve failed to start on {host}:{port}")
        yield _url(host, port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
