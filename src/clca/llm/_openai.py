"""Backend for any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, `clca serve`).

- The API key comes only from the environment variable named by `api_key_env`; it is never
  logged, stored or put into an exception message.
- Requests are bounded by a semaphore (`concurrency`) and spread over replicas (several base URLs of
  one model): the replica with the fewest requests in flight wins; a replica that fails twice in a
  row is skipped for `replica_cooldown` seconds.
- Our own retry loop (the client's `max_retries` is 0): timeouts, connection errors, invalid
  response bodies, 408, 429 and 5xx are retried with exponential backoff and full jitter, honouring
  `Retry-After`; other 4xx fail at once.
- Option scoring: vLLM prompt logprobs of the option as a continued assistant message, or the
  top-20 logprobs of the first generated token; see `score_options`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
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

from ..errors import BackendError, ModelStringError, UnsupportedError
from ._protocol import ChatResult, GenParams, Message, T
from ._structured import structured_by_reasking

log = logging.getLogger("clca.llm.openai")

ScoringPath = Literal["prompt_logprobs", "top_logprobs"]
_RETRY_STATUS = {408, 409, 429}
_TOP_K = 20
_UNSUPPORTED_STATUS = {400, 422}  # how servers refuse unknown request fields


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
    scoring: Literal["auto", "prompt_logprobs", "top_logprobs"] = "auto"
    json_schema: bool = Field(True, description="send response_format json_schema in structured()")


class _HTTPStatusError(BackendError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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
        self.scoring_path: ScoringPath | None = None if config.scoring == "auto" else config.scoring

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> OpenAIModel:
        from ._spec import openai_config

        if not spec.startswith("openai:"):
            raise ModelStringError(f"not an openai model string: {spec!r}")
        return cls(openai_config(spec, OpenAIConfig, **options))

    @property
    def model_id(self) -> str:
        return f"openai:{self.config.model}"

    @property
    def replica_requests(self) -> dict[str, int]:
        """HTTP attempts sent to each replica so far."""
        return {r.url: r.requests for r in self._replicas}

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIModel(model={self.config.model!r}, base_urls={self.config.base_urls!r})"

    # -- LLM protocol -----------------------------------------------------------------------------
    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        return await self._chat(messages, params)

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        response_format = None
        if self.config.json_schema:
            js = schema.model_json_schema()
            name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "answer"
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": js, "strict": _strict_compatible(js)},
            }

        async def gen(msgs: list[Message], p: GenParams) -> str:
            return (await self._chat(msgs, p, response_format=response_format)).text

        return await structured_by_reasking(gen, messages, schema, params, max_attempts)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """Normalised probability of each option as the assistant's whole answer.

        prompt_logprobs path (vLLM): one request per option with the option as a continued assistant
        message; the option's log-probability is the sum over the trailing prompt tokens that spell it.
        top_logprobs path: the first generated token's top-20 alternatives; needs options whose first
        tokens differ (an option absent from the top 20 gets probability 0, with a warning).
        """
        if not options:
            raise ValueError("score_options needs at least one option")
        if any(not o.strip() for o in options):
            raise ValueError("score_options: options must be non-empty strings")
        try:
            if self.scoring_path == "prompt_logprobs":
                return _normalise(await self._score_prompt(messages, options))
            if self.scoring_path == "top_logprobs":
                return _normalise(self._map_top(await self._first_token_top(messages), options))
        except _NoField as e:
            raise UnsupportedError(
                f"{self.model_id} at {self.config.base_urls[0]}: scoring={self.scoring_path} but the server "
                f"returned {e}"
            ) from None
        try:  # auto: probe the vLLM path first, then top_logprobs
            logps = await self._score_prompt(messages, options)
            self._set_path("prompt_logprobs")
            return _normalise(logps)
        except (_NoField, _HTTPStatusError) as e:
            if isinstance(e, _HTTPStatusError) and e.status not in _UNSUPPORTED_STATUS:
                raise
            log.info("prompt_logprobs unavailable at %s (%s); trying top_logprobs", self.config.base_urls[0], e)
        try:
            top = await self._first_token_top(messages)
        except (_NoField, _HTTPStatusError) as e:
            if isinstance(e, _HTTPStatusError) and e.status not in _UNSUPPORTED_STATUS:
                raise
            raise UnsupportedError(
                f"{self.model_id} at {self.config.base_urls[0]} offers neither vLLM prompt_logprobs nor "
                f"top_logprobs; option scoring needs one of them (use vLLM, or `clca serve`); last answer: {e}"
            ) from None
        self._set_path("top_logprobs")
        return _normalise(self._map_top(top, options))

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
                f"with token {dup[0]!r} (use a vLLM server, whose prompt_logprobs score whole options)"
            )
        if all(lp == -math.inf for lp in logps):
            raise BackendError(f"{self.model_id}: none of the options {list(options)} is among the top-{_TOP_K} tokens")
        missing = [o for o, lp in zip(options, logps, strict=True) if lp == -math.inf]
        if missing:
            log.warning("options %s are not among the top-%d first tokens; their probability is 0", missing, _TOP_K)
        return logps

    def _set_path(self, path: ScoringPath) -> None:
        if self.scoring_path != path:
            log.info("%s: option scoring uses %s", self.model_id, path)
        self.scoring_path = path

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

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions with retries; returns the parsed JSON body."""
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
                    raw = await self._client(rep).chat.completions.with_raw_response.create(**body)
                    data = json.loads(raw.text)
                    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
                        raise ValueError("no choices")
                    rep.consecutive_failures, rep.down_until = 0, 0.0
                    return data
                except openai.APIStatusError as e:
                    status = e.status_code
                    reason = f"HTTP {status}: {self._scrub(_error_text(e))}"
                    if status not in _RETRY_STATUS and status < 500:
                        self._count(f"HTTP {status}")
                        raise _HTTPStatusError(f"{self.model_id} at {rep.url}: {reason}", status) from None
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
        from ._scrub import scrub_key

        return scrub_key(text, self._key)


# -- pure helpers (unit-tested directly) ----------------------------------------------------------
def option_logprob(prompt_logprobs: list[Any], option: str) -> float:
    """Sum of the logprobs of the trailing prompt tokens that spell `option` (vLLM response shape).

    `prompt_logprobs` holds one entry per prompt token: None (first token, or a token the server
    did not score) or a dict token_id -> {"logprob", "rank", "decoded_token"}; with prompt_logprobs=0
    the dict holds the prompt token itself.
    """
    want = option.strip()
    acc, total = "", 0.0
    for entry in reversed(prompt_logprobs):
        if not isinstance(entry, dict) or not entry:
            break
        info = next(iter(entry.values()))
        try:
            acc = str(info.get("decoded_token") or "") + acc
            total += float(info["logprob"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise BackendError("malformed prompt_logprobs entry in the server response") from None
        if len(acc.lstrip()) >= len(want):
            break
    if not acc.strip().endswith(want):
        raise BackendError(
            f"the prompt tokens do not end with the option {option!r} (got {acc[-40:]!r}); the server's chat "
            "template may not support continue_final_message"
        )
    return total


def first_token_logprobs(
    top: list[tuple[str, float]], options: Sequence[str]
) -> tuple[list[float], dict[str, list[str]]]:
    """Map each option to its first token among the top alternatives.

    An option's token is the top token equal to the option, else equal to it after stripping
    whitespace, else the longest top token (stripped) that the option starts with. Returns the
    log-probabilities (-inf where no token matches) and token -> options that map to it.
    """
    logps: list[float] = []
    owners: dict[str, list[str]] = {}
    for opt in options:
        s = opt.strip()
        exact = [(t, lp) for t, lp in top if t == opt]
        stripped = [(t, lp) for t, lp in top if t.strip() == s]
        prefix = sorted(
            ((t, lp) for t, lp in top if t.strip() and s.startswith(t.strip())), key=lambda x: -len(x[0].strip())
        )
        found = exact or stripped or prefix
        if not found:
            logps.append(-math.inf)
            continue
        tok, lp = max(found, key=lambda x: x[1]) if (exact or stripped) else found[0]
        logps.append(lp)
        owners.setdefault(tok.strip(), []).append(opt)
    return logps, owners


def _normalise(logps: list[float]) -> list[float]:
    m = max(logps)
    if m == -math.inf:
        raise BackendError("every option has probability 0")
    ex = [math.exp(lp - m) for lp in logps]
    z = sum(ex)
    return [e / z for e in ex]


def _strict_compatible(schema: dict[str, Any]) -> bool:
    """OpenAI strict mode needs every object closed (additionalProperties false) with all keys required."""
    ok = True

    def walk(node: Any) -> None:
        nonlocal ok
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                if node.get("additionalProperties") is not False or set(node.get("required", [])) != set(
                    node["properties"]
                ):
                    ok = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return ok


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
