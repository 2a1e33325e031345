"""Backend for any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, `clca serve`).

- The API key comes only from the environment variable named by `api_key_env`; it is never
  logged, stored or put into an exception message.
- Requests are bounded by a semaphore (`concurrency`) and spread over replicas (several base URLs of
  one model): the replica with the fewest requests in flight wins; a replica that fails twice in a
  row is skipped for `replica_cooldown` seconds.
- Our own retry loop (the client's `max_retries` is 0): timeouts, connection errors, invalid
  response bodies, 408, 429 and 5xx are retried with exponential backoff and full jitter, honouring
  `Retry-After`. Deterministic refusals (other 4xx, and a 5xx whose body names an unsupported or invalid
  field) are never resent with the same body: they move to the next form (see `_capabilities`) or fail
  with a one-line error naming the field and the server.
- Structured output: json_schema -> json_object + schema -> json_object -> the schema in words in the
  prompt; option scoring: vLLM prompt_logprobs -> /v1/completions echo -> first-token top_logprobs. What
  the server took is found on first use and remembered per server (`capabilities`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field

from .._scrub import scrub_url_credentials
from ..errors import BackendError, UnsupportedError
from ._capabilities import (
    SCORING_ORDER,
    STRUCTURED_ORDER,
    Refusal,
    ScoringPath,
    StructuredForm,
    capabilities_for,
    refusal,
)
from ._jsonschema import strict_compatible
from ._openai_scoring import echo_option_logprob, first_token_logprobs, option_logprob
from ._protocol import ChatResult, GenParams, Message, T
from ._scoring import normalise
from ._structured import schema_in_words, structured_by_reasking

__all__ = ["OpenAIConfig", "OpenAIModel", "api_key_for", "first_token_logprobs", "option_logprob"]

log = logging.getLogger("clca.llm.openai")

_RETRY_STATUS = {408, 409, 429}
_TOP_K = 20
_FORMAT_WORDS = ("response_format", "json_schema", "schema", "json_object", "format")


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


class _HTTPStatusError(BackendError):
    def __init__(self, message: str, status: int, refused: Refusal | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.refused = refused


class _NoField(Exception):
    """The server answered but without the logprob field asked for."""


@dataclass
class _Replica:
    url: str
    client: openai.AsyncOpenAI | None = None  # bound to the event loop below (HTTP pools are per loop)
    loop: asyncio.AbstractEventLoop | None = None
    in_flight: int = 0
    requests: int = 0
    consecutive_failures: int = 0
    down_until: float = 0.0


@dataclass
class RequestStats:
    """Counters of one OpenAIModel (HTTP attempts, retries, failures by reason)."""

    attempts: int = 0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)


def api_key_for(cfg: OpenAIConfig) -> str:
    """The API key from the environment; a dummy value for loopback-only servers when unset."""
    from ._spec import is_loopback

    key = os.environ.get(cfg.api_key_env)
    if key:
        return key
    if all(is_loopback(u) for u in cfg.base_urls):
        return "EMPTY"
    raise BackendError(
        f"environment variable {cfg.api_key_env} is not set; it must hold the API key for {cfg.base_urls[0]} "
        "(choose another variable with ?api_key_env=NAME)"
    )


class OpenAIModel:
    """An `LLM` backed by one or more replicas of an OpenAI-compatible server."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._key = api_key_for(config)
        self._replicas = [_Replica(url) for url in config.base_urls]
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None
        self.stats = RequestStats()
        self.capabilities = capabilities_for(config.model, config.base_urls)
        # explicit settings hold for this model only; the shared record keeps what the server was found to do
        self._forced_scoring: ScoringPath | None = None if config.scoring == "auto" else config.scoring
        self._forced_form: StructuredForm | None = None if config.json_schema else "prompt"
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._template: tuple[str, dict[str, str]] | None | bool = False  # False: not looked up yet

    @property
    def scoring_path(self) -> ScoringPath | None:
        """The scoring path in use (None until the first `score_options` found one)."""
        path = self._forced_scoring or self.capabilities.scoring
        return None if path == "none" else path

    @property
    def model_id(self) -> str:
        return f"openai:{self.config.model}"

    @property
    def replica_requests(self) -> dict[str, int]:
        """HTTP attempts sent to each replica so far."""
        return {r.url: r.requests for r in self._replicas}

    def __repr__(self) -> str:  # never shows the key
        return scrub_url_credentials(f"OpenAIModel(model={self.config.model!r}, base_urls={self.config.base_urls!r})")

    # -- LLM protocol -----------------------------------------------------------------------------
    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        return await self._chat(messages, params)

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        caps = self.capabilities
        if self._forced_form is not None:
            return await self._structured_as(self._forced_form, messages, schema, params, max_attempts)
        if caps.structured is not None:
            return await self._structured_as(caps.structured, messages, schema, params, max_attempts)
        async with self._lock("structured"):  # the first call finds the form; the others wait for it
            if caps.structured is None:
                return await self._probe_structured(messages, schema, params, max_attempts)
        # the waiters send outside the lock, so they run concurrently (bounded by `concurrency`)
        return await self._structured_as(caps.structured, messages, schema, params, max_attempts)

    async def _probe_structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams, max_attempts: int
    ) -> T:
        caps = self.capabilities
        for form in STRUCTURED_ORDER:
            try:
                obj = await self._structured_as(form, messages, schema, params, max_attempts)
            except _HTTPStatusError as e:
                if form == "prompt" or e.refused is None or not e.refused.mentions(*_FORMAT_WORDS):
                    raise
                caps.refused[form] = f"HTTP {e.status}: {e.refused.message[:160]}"
                log.info("%s at %s refuses structured form %s; trying the next", self.model_id, self._where(), form)
                continue
            caps.structured = form
            log.info("%s at %s: structured output uses %s", self.model_id, self._where(), form)
            return obj
        raise AssertionError("unreachable: the prompt form sends no response_format")

    async def _structured_as(
        self, form: StructuredForm, messages: Sequence[Message], schema: type[T], params: GenParams, max_attempts: int
    ) -> T:
        js = schema.model_json_schema()
        response_format: dict[str, Any] | None = None
        if form == "json_schema":
            name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "answer"
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": js, "strict": strict_compatible(js)},
            }
        elif form == "json_object_schema":
            response_format = {"type": "json_object", "schema": js}
        elif form == "json_object":
            response_format = {"type": "json_object"}

        async def gen(msgs: list[Message], p: GenParams) -> str:
            return (await self._chat(msgs, p, response_format=response_format)).text

        instruction = schema_in_words(schema) if form == "prompt" else None
        return await structured_by_reasking(gen, messages, schema, params, max_attempts, instruction=instruction)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """Normalised probability of each option as the assistant's whole answer.

        prompt_logprobs path (vLLM): one request per option with the option as a continued assistant
        message; the option's log-probability is the sum over the trailing prompt tokens that spell it.
        completions_echo path: one /v1/completions request per option over clca's rendering of the chat
        template plus the option, with echo + logprobs; the option's tokens are summed.
        top_logprobs path: the first generated token's top-20 alternatives; needs options whose first
        tokens differ (an option absent from the top 20 gets probability 0, with a warning).
        """
        if not options:
            raise ValueError("score_options needs at least one option")
        if any(not o.strip() for o in options):
            raise ValueError("score_options: options must be non-empty strings")
        caps = self.capabilities
        path = self._forced_scoring or caps.scoring
        if path is None:
            async with self._lock("scoring"):  # the first call finds the path; the others wait for it
                if caps.scoring is None:
                    return await self._probe_scoring(messages, options)
            path = caps.scoring
        if path == "completions_echo" and self._forced_scoring is None and await self._chat_template() is None:
            # the server's record came from a client that knew the chat template; this one does not, so
            # it takes the next path (for this model only; the shared record stays)
            if "top_logprobs" in caps.refused:
                raise self._no_scoring()
            path = self._forced_scoring = "top_logprobs"
        if path == "none":
            raise self._no_scoring()
        try:
            return await self._score_by(path, messages, options)
        except _NoField as e:
            raise UnsupportedError(
                f"{self.model_id} at {self._where()}: scoring={path} but the server returned {e}"
            ) from None

    async def _score_by(self, path: ScoringPath, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        if path == "prompt_logprobs":
            return normalise(await self._score_prompt(messages, options))
        if path == "completions_echo":
            return normalise(await self._score_echo(messages, options))
        return normalise(self._map_top(await self._first_token_top(messages), options))

    async def _probe_scoring(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        caps = self.capabilities
        for path in SCORING_ORDER:
            if path == "completions_echo" and await self._chat_template() is None:
                caps.refused[path] = f"no chat template known (chat_template={self.config.chat_template})"
                continue
            try:
                if path == "top_logprobs":
                    top = await self._first_token_top(messages)
                    self._set_path(path)  # the path works; options sharing a first token are refused below
                    return normalise(self._map_top(top, options))
                probs = await self._score_by(path, messages, options)
            except (_NoField, _HTTPStatusError) as e:
                if isinstance(e, _HTTPStatusError) and e.refused is None:
                    raise
                caps.refused[path] = _why(e)
                log.info("%s at %s: scoring path %s unavailable (%s)", self.model_id, self._where(), path, e)
                continue
            self._set_path(path)
            return probs
        caps.scoring = "none"
        raise self._no_scoring()

    def _no_scoring(self) -> UnsupportedError:
        why = "; ".join(f"{k}: {v}" for k, v in self.capabilities.refused.items() if k in SCORING_ORDER)
        return UnsupportedError(
            f"{self.model_id} at {self._where()} offers neither vLLM prompt_logprobs nor top_logprobs (nor "
            f"/v1/completions echo with a known chat template); option scoring needs one of them ({why})"
        )

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        for r in self._replicas:
            if r.client is not None and r.loop is loop:
                await r.client.close()
            r.client = r.loop = None

    # -- requests ---------------------------------------------------------------------------------
    async def _chat(
        self, messages: Sequence[Message], params: GenParams, response_format: dict[str, Any] | None = None
    ) -> ChatResult:
        body: dict[str, Any] = {
            "messages": [dict(m) for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": params.n,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if response_format is not None:
            body["response_format"] = response_format
        data = await self._request(body)
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        texts = [((c.get("message") or {}).get("content") or "") for c in choices]
        if len(texts) != params.n:
            raise BackendError(f"{self.model_id}: asked for n={params.n} completions, the server returned {len(texts)}")
        usage = data.get("usage") or {}
        return ChatResult(
            texts=texts,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reasons=[str(c.get("finish_reason") or "") for c in choices],
        )

    async def _score_prompt(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        async def one(option: str) -> float:
            body = {
                "messages": [dict(m) for m in messages] + [{"role": "assistant", "content": option}],
                "temperature": 0.0,
                "max_tokens": 1,
                "extra_body": {"add_generation_prompt": False, "continue_final_message": True, "prompt_logprobs": 0},
            }
            data = await self._request(body)
            plps = data.get("prompt_logprobs")
            if not isinstance(plps, list) or not plps:
                raise _NoField("no prompt_logprobs in the response")
            return option_logprob(plps, option)

        results = await asyncio.gather(*(one(o) for o in options), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [float(r) for r in results]  # type: ignore[arg-type]

    async def _score_echo(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        from ._chat_template import render_prompt

        tpl = await self._chat_template()
        if tpl is None:
            raise _NoField("no chat template known for the completions echo path")
        prefix = render_prompt(tpl[0], tpl[1], [dict(m) for m in messages])

        async def one(option: str) -> float:
            text = prefix + option
            body = {"prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
            data = await self._request(body, endpoint="completions")
            lp = (data["choices"][0] or {}).get("logprobs")
            if not isinstance(lp, dict) or not lp.get("tokens"):
                raise _NoField("no echoed logprobs in the /v1/completions response")
            usage = data.get("usage")
            done = usage.get("completion_tokens") if isinstance(usage, dict) else None
            generated = done if isinstance(done, int) else None
            return echo_option_logprob(lp, len(prefix), len(text), text=text, generated=generated)

        results = await asyncio.gather(*(one(o) for o in options), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [float(r) for r in results]  # type: ignore[arg-type]

    async def _chat_template(self) -> tuple[str, dict[str, str]] | None:
        """The chat template of the echo path (see `_chat_template`); looked up once."""
        if self._template is not False:
            return self._template  # type: ignore[return-value]
        from ._chat_template import load_template, server_template

        source = self.config.chat_template
        tpl = load_template(source)
        where = source
        if tpl is None and source == "auto":
            tpl = await server_template(self.config.base_urls[0], self._key, self.config.timeout)
            where = "server /props"
        self._template = tpl
        if tpl is not None:
            self.capabilities.chat_template = where
        return tpl

    def _lock(self, what: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        key = (what, id(loop))
        if key not in self._locks:
            self._locks = {k: v for k, v in self._locks.items() if k[1] == id(loop)}
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    def _where(self) -> str:
        return scrub_url_credentials(", ".join(self.config.base_urls))

    async def _first_token_top(self, messages: Sequence[Message]) -> list[tuple[str, float]]:
        body = {
            "messages": [dict(m) for m in messages],
            "temperature": 0.0,
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": _TOP_K,
        }
        data = await self._request(body)
        try:
            first = data["choices"][0]["logprobs"]["content"][0]
            top = [(str(t["token"]), float(t["logprob"])) for t in first["top_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise _NoField("no top_logprobs in the response") from None
        if not top:
            raise _NoField("empty top_logprobs in the response")
        return top

    def _map_top(self, top: list[tuple[str, float]], options: Sequence[str]) -> list[float]:
        logps, owners = first_token_logprobs(top, options)
        dup = [t for t, os_ in owners.items() if len(os_) > 1]
        if dup:
            raise UnsupportedError(
                f"top_logprobs scoring needs options with distinct first tokens; options {owners[dup[0]]} all start "
                f"with token {dup[0]!r} (use a vLLM server, whose prompt_logprobs score whole options, or a server "
                "with /v1/completions echo and ?chat_template=embedded|DIR so clca can render the prompt)"
            )
        if all(lp == float("-inf") for lp in logps):
            raise BackendError(f"{self.model_id}: none of the options {list(options)} is among the top-{_TOP_K} tokens")
        missing = [o for o, lp in zip(options, logps, strict=True) if lp == float("-inf")]
        if missing:
            log.warning("options %s are not among the top-%d first tokens; their probability is 0", missing, _TOP_K)
        return logps

    def _set_path(self, path: ScoringPath) -> None:
        if self.capabilities.scoring != path:
            log.info("%s: option scoring uses %s", self.model_id, path)
        self.capabilities.scoring = path

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:  # one per event loop (asyncio.run may be called often)
            self._sem, self._sem_loop = asyncio.Semaphore(self.config.concurrency), loop
        return self._sem

    def _pick(self, avoid: _Replica | None) -> _Replica:
        now = time.monotonic()
        up = [r for r in self._replicas if r.down_until <= now] or sorted(self._replicas, key=lambda r: r.down_until)[
            :1
        ]
        if avoid is not None and len(up) > 1:
            up = [r for r in up if r is not avoid]
        return min(up, key=lambda r: (r.in_flight, r.requests))

    async def _request(self, body: dict[str, Any], endpoint: Literal["chat", "completions"] = "chat") -> dict[str, Any]:
        """POST /chat/completions (or /completions) with retries; returns the parsed JSON body."""
        cfg = self.config
        body = {"model": cfg.model, **body}
        last_reason, rep = "no attempt made", None
        async with self._semaphore():
            for attempt in range(cfg.max_retries + 1):
                rep = self._pick(avoid=rep)
                rep.in_flight += 1
                rep.requests += 1
                self.stats.attempts += 1
                retry_after: float | None = None
                try:
                    client = self._client(rep)
                    api = client.chat.completions if endpoint == "chat" else client.completions
                    raw = await api.with_raw_response.create(**body)
                    data = json.loads(raw.text)
                    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
                        raise ValueError("no choices")
                    rep.consecutive_failures, rep.down_until = 0, 0.0
                    return data
                except openai.APIStatusError as e:
                    status = e.status_code
                    text = self._scrub(_error_text(e))
                    reason = f"HTTP {status}: {text}"
                    refused = refusal(status, text)
                    if refused is not None:  # deterministic: the same body would be refused again
                        self._count(f"HTTP {status}")
                        named = f" (field {refused.field}; not retried)" if refused.field else ""
                        msg = f"{self.model_id} at {scrub_url_credentials(rep.url)}: {reason}{named}"
                        raise _HTTPStatusError(msg, status, refused) from None
                    retry_after = _retry_after(e.response.headers.get("retry-after"))
                    last_reason = reason
                    if status >= 500:
                        self._replica_failed(rep)
                    self._count(f"HTTP {status}")
                except openai.APITimeoutError:
                    last_reason = f"timed out after {cfg.timeout:g}s"
                    self._replica_failed(rep)
                    self._count("timeout")
                except openai.APIConnectionError as e:
                    last_reason = f"connection failed ({self._scrub(str(e.__cause__ or e))[:160]})"
                    self._replica_failed(rep)
                    self._count("connection")
                except (ValueError, TypeError):
                    last_reason = "invalid response body (not a chat completion JSON)"
                    self._replica_failed(rep)
                    self._count("invalid body")
                finally:
                    rep.in_flight -= 1
                if attempt == cfg.max_retries:
                    break
                self.stats.retries += 1
                delay = self._backoff(attempt, retry_after)
                log.info(
                    "%s at %s: %s; retry %d/%d in %.2fs",
                    self.model_id,
                    rep.url,
                    last_reason,
                    attempt + 1,
                    cfg.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        where = rep.url if len(self._replicas) == 1 or rep is None else f"{len(self._replicas)} replicas"
        raise BackendError(
            f"{self.model_id} at {where}: gave up after {cfg.max_retries + 1} attempts; last error: {last_reason}"
        )

    def _client(self, rep: _Replica) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if rep.client is None or rep.loop is not loop:  # a new asyncio.run(): the old pool is unusable
            rep.client = openai.AsyncOpenAI(
                api_key=self._key, base_url=rep.url, max_retries=0, timeout=self.config.timeout
            )
            rep.loop = loop
        return rep.client

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config
        if retry_after is not None:
            return min(retry_after, cfg.backoff_max)
        return random.uniform(0, min(cfg.backoff_max, cfg.backoff_base * 2**attempt))

    def _replica_failed(self, rep: _Replica) -> None:
        rep.consecutive_failures += 1
        if rep.consecutive_failures >= 2 and len(self._replicas) > 1:
            rep.down_until = time.monotonic() + self.config.replica_cooldown
            log.warning(
                "replica %s failed %d times in a row; skipping it for %gs",
                rep.url,
                rep.consecutive_failures,
                self.config.replica_cooldown,
            )

    def _count(self, reason: str) -> None:
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1

    def _scrub(self, text: str) -> str:
        from .._scrub import scrub_key

        return scrub_url_credentials(scrub_key(text, self._key))


def _why(e: Exception) -> str:
    if isinstance(e, _HTTPStatusError) and e.refused is not None:
        return f"HTTP {e.status}: {e.refused.message[:160]}"
    return str(e)[:200]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_text(e: openai.APIStatusError) -> str:
    body, msg = e.body, None
    if isinstance(body, dict):
        inner = body.get("error")
        msg = inner.get("message") if isinstance(inner, dict) else None
        msg = msg or body.get("message") or body.get("detail")
    if msg is None:
        try:
            msg = e.response.text
        except Exception:  # noqa: BLE001  (streamed or closed body)
            msg = "no error message"
    return " ".join(str(msg).split())[:300]
