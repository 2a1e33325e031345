"""A persistent response cache in front of any `LLM` (SQLite in WAL mode, safe for concurrent writers).

Key = sha256 of the canonical JSON of (model_id, method, request): the messages, the generation
parameters, the JSON schema and attempt bound of `structured`, the options of `score_options`.

What is cached:
- deterministic requests (temperature 0): always (the seed is left out of their key);
- sampled requests (temperature > 0): only when a seed is given; the key holds the seed and n,
  and the n sampled texts are stored in order (sample index 0..n-1), so a resumed run gets
  exactly the samples the first run saw;
- failures (exceptions) are never cached.

Other attributes (e.g. `generate_with_logprobs`, `tokenizer`) pass through to the wrapped model.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._protocol import LLM, ChatResult, GenParams, Message, T

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY,
  model_id TEXT NOT NULL,
  method TEXT NOT NULL,
  value TEXT NOT NULL,
  created_at REAL NOT NULL
);
"""


def default_cache_path() -> Path:
    from ._embedded import cache_dir

    return cache_dir() / "responses.sqlite"


@dataclass
class CacheStats:
    """Hits and misses of one CachedLLM, in total and per method."""

    hits: int = 0
    misses: int = 0
    uncacheable: int = 0
    by_method: dict[str, list[int]] = field(default_factory=dict)  # method -> [hits, misses]

    def _add(self, method: str, hit: bool) -> None:
        hm = self.by_method.setdefault(method, [0, 0])
        if hit:
            self.hits += 1
            hm[0] += 1
        else:
            self.misses += 1
            hm[1] += 1


class ResponseCache:
    """The SQLite table of cached responses. One connection, guarded by a lock; WAL for many processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, model_id: str, method: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses(key, model_id, method, value, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, model_id, method, json.dumps(value, ensure_ascii=False), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def request_key(model_id: str, method: str, request: dict[str, Any]) -> str:
    blob = json.dumps({"model_id": model_id, "method": method, **request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _params_key(params: GenParams) -> dict[str, Any] | None:
    """The part of the key that params contribute; None when the request must not be cached."""
    p = asdict(params)
    p["stop"] = list(params.stop)
    if params.deterministic:
        p.pop("seed")  # greedy output does not depend on the seed
        return p
    if params.seed is None:
        return None  # unseeded sampling: every call should be a fresh sample
    return p


class CachedLLM:
    """Wrap an `LLM` so repeated requests are answered from the cache with zero model calls."""

    def __init__(self, inner: LLM, path: str | Path | None = None, cache: ResponseCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else ResponseCache(path)
        self.stats = CacheStats()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def __getattr__(self, name: str) -> Any:  # only called for attributes CachedLLM itself lacks
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CachedLLM({self.inner!r}, path={str(self.cache.path)!r})"

    def _lookup(self, method: str, request: dict[str, Any]) -> tuple[str, Any | None]:
        key = request_key(self.model_id, method, request)
        value = self.cache.get(key)
        self.stats._add(method, value is not None)
        return key, value

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        pk = _params_key(params)
        if pk is None:
            self.stats.uncacheable += 1
            return await self.inner.chat(messages, params)
        key, hit = self._lookup("chat", {"messages": list(messages), "params": pk})
        if hit is not None:
            return ChatResult(
                texts=hit["texts"],
                prompt_tokens=hit["prompt_tokens"],
                completion_tokens=hit["completion_tokens"],
                finish_reasons=hit["finish_reasons"],
                cached=True,
            )
        res = await self.inner.chat(messages, params)
        value = {
            "texts": res.texts,
            "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens,
            "finish_reasons": res.finish_reasons,
        }
        self.cache.put(key, self.model_id, "chat", value)
        return res

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        pk = _params_key(params)
        if pk is None:
            self.stats.uncacheable += 1
            return await self.inner.structured(messages, schema, params, max_attempts)
        request = {
            "messages": list(messages),
            "params": pk,
            "schema": schema.model_json_schema(),
            "schema_name": f"{schema.__module__}.{schema.__qualname__}",
            "max_attempts": max_attempts,
        }
        key, hit = self._lookup("structured", request)
        if hit is not None:
            return schema.model_validate(hit)
        obj = await self.inner.structured(messages, schema, params, max_attempts)
        self.cache.put(key, self.model_id, "structured", obj.model_dump(mode="json"))
        return obj

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        key, hit = self._lookup("score_options", {"messages": list(messages), "options": list(options)})
        if hit is not None:
            return [float(x) for x in hit]
        probs = await self.inner.score_options(messages, options)
        self.cache.put(key, self.model_id, "score_options", list(probs))
        return probs

    async def aclose(self) -> None:
        await self.inner.aclose()
        self.cache.close()
