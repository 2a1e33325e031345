"""The HTTP side of the `openai:` backend: replicas of one model, bounded concurrency, and retries.

- Requests are bounded by a semaphore (`concurrency`) and spread over replicas (several base URLs of
  one model): the replica with the fewest requests in flight wins; a replica that fails twice in a
  row is skipped for `replica_cooldown` seconds.
- Our own retry loop (the client's `max_retries` is 0): timeouts, connection errors, invalid
  response bodies, 408, 429 and 5xx are retried with exponential backoff and full jitter, honouring
  `Retry-After`. Deterministic refusals (other 4xx, and a 5xx whose body names an unsupported or invalid
  field, see `_capabilities.refusal`) raise `HTTPStatusError` at once: the same body is never resent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import openai

from ..._scrub import scrub_key, scrub_url_credentials
from ...errors import BackendError
from ._capabilities import Refusal, refusal
from ._openai_config import OpenAIConfig

log = logging.getLogger("clca.llm.openai")


class HTTPStatusError(BackendError):
    """An HTTP error answer; `refused` is set when the server refused the body itself (never resent)."""

    def __init__(self, message: str, status: int, refused: Refusal | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.refused = refused


@dataclass
class Replica:
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


class LoopLocks:
    """One `asyncio.Lock` per name and event loop (a model outlives many `asyncio.run` calls)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def __call__(self, what: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        key = (what, id(loop))
        if key not in self._locks:
            self._locks = {k: v for k, v in self._locks.items() if k[1] == id(loop)}
            self._locks[key] = asyncio.Lock()
        return self._locks[key]


class ReplicaPool:
    """The replicas of one model behind one semaphore; `request` sends a body with retries and failover."""

    def __init__(self, config: OpenAIConfig, key: str, model_id: str) -> None:
        self.config = config
        self.model_id = model_id
        self._key = key
        self.replicas = [Replica(url) for url in config.base_urls]
        self.stats = RequestStats()
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None

    def where(self) -> str:
        """The base URLs, credentials scrubbed (for messages)."""
        return scrub_url_credentials(", ".join(self.config.base_urls))

    def scrub(self, text: str) -> str:
        return scrub_url_credentials(scrub_key(text, self._key))

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        for r in self.replicas:
            if r.client is not None and r.loop is loop:
                await r.client.close()
            r.client = r.loop = None

    async def request(self, body: dict[str, Any], endpoint: Literal["chat", "completions"] = "chat") -> dict[str, Any]:
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
                    text = self.scrub(_error_text(e))
                    reason = f"HTTP {status}: {text}"
                    refused = refusal(status, text)
                    if refused is not None:  # deterministic: the same body would be refused again
                        self._count(f"HTTP {status}")
                        named = f" (field {refused.field}; not retried)" if refused.field else ""
                        msg = f"{self.model_id} at {scrub_url_credentials(rep.url)}: {reason}{named}"
                        raise HTTPStatusError(msg, status, refused) from None
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
                    last_reason = f"connection failed ({self.scrub(str(e.__cause__ or e))[:160]})"
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
        where = rep.url if len(self.replicas) == 1 or rep is None else f"{len(self.replicas)} replicas"
        raise BackendError(
            f"{self.model_id} at {where}: gave up after {cfg.max_retries + 1} attempts; last error: {last_reason}"
        )

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:  # one per event loop (asyncio.run may be called often)
            self._sem, self._sem_loop = asyncio.Semaphore(self.config.concurrency), loop
        return self._sem

    def _pick(self, avoid: Replica | None) -> Replica:
        now = time.monotonic()
        up = [r for r in self.replicas if r.down_until <= now] or sorted(self.replicas, key=lambda r: r.down_until)[:1]
        if avoid is not None and len(up) > 1:
            up = [r for r in up if r is not avoid]
        return min(up, key=lambda r: (r.in_flight, r.requests))

    def _client(self, rep: Replica) -> openai.AsyncOpenAI:
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

    def _replica_failed(self, rep: Replica) -> None:
        rep.consecutive_failures += 1
        if rep.consecutive_failures >= 2 and len(self.replicas) > 1:
            rep.down_until = time.monotonic() + self.config.replica_cooldown
            log.warning(
                "replica %s failed %d times in a row; skipping it for %gs",
                rep.url,
                rep.consecutive_failures,
                self.config.replica_cooldown,
            )

    def _count(self, reason: str) -> None:
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1


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
