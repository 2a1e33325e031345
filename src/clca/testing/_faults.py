"""A fault-injecting OpenAI-compatible server (loopback only) for tests of every stage.

It serves an inner `LLM` (MockLLM, the embedded model, ...) exactly like `clca serve`, but a
deterministic fault schedule decides, per numbered chat-completions request (1, 2, 3, ...), whether
to answer normally or to misbehave: answer an HTTP status (429 with Retry-After, 500, 503, 400, ...),
delay, hang past the client's timeout, truncate the body, send invalid JSON, send a completion whose
content breaks the requested schema, or drop the connection without an answer.

It is a small HTTP/1.1 server on asyncio streams (so it can truncate and drop connections, which a
normal ASGI server cannot), forwarding healthy requests to the `clca serve` app in-process.

    with fault_server(MockLLM(["hi"]), Fault(kind="status", status=429, first=2)) as fs:
        llm = load_model(fs.model_string(backoff_base=0), cache=False)
        ...
        assert fs.counters.requests == 3
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..llm import LLM
from ._profiles import ServerProfile, body_key, completions, get_profile

FaultKind = Literal["status", "delay", "timeout", "truncate", "invalid_json", "bad_schema", "drop"]
_CHAT_PATH = "/v1/chat/completions"
_COMPLETIONS_PATH = "/v1/completions"
BAD_SCHEMA_CONTENT = '{"fault_injected": true}'


class Fault(BaseModel):
    """One rule of the schedule. Selectors (any that is set must match): `first` (requests 1..first),
    `every` (every k-th request), `requests` (these numbers), `prob` (seeded per request number).
    With no selector the rule matches every request. The first matching rule applies."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    status: int = Field(500, ge=400, le=599, description="HTTP status for kind 'status'")
    retry_after: float | None = Field(None, ge=0, description="Retry-After seconds sent with a status fault")
    delay: float = Field(0.0, ge=0, description="seconds: added latency ('delay') or hang time ('timeout')")
    first: int | None = Field(None, ge=0)
    every: int | None = Field(None, ge=1)
    requests: list[int] | None = None
    prob: float | None = Field(None, ge=0, le=1)

    def matches(self, n: int, seed: int, index: int) -> bool:
        if self.first is not None and n > self.first:
            return False
        if self.every is not None and n % self.every != 0:
            return False
        if self.requests is not None and n not in self.requests:
            return False
        if self.prob is not None and random.Random(f"{seed}:{index}:{n}").random() >= self.prob:
            return False
        return True


@dataclass
class FaultCounters:
    """What the server saw: chat requests numbered from 1, faults injected by kind, healthy answers."""

    requests: int = 0
    ok: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    other_requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    auth_digests: set[str] = field(default_factory=set)  # sha256 of Authorization headers (never the value)
    request_bodies: list[dict[str, Any]] = field(default_factory=list)
    # server profiles: deterministic refusals by status and message, /v1/completions requests, and requests
    # whose body equals one refused before (a client must never resend a refused body)
    refusals: Counter[str] = field(default_factory=Counter)
    completions: int = 0
    repeated_refusals: int = 0
    refused_bodies: set[str] = field(default_factory=set)


class FaultServer:
    """Runs in a background thread with its own event loop; use `fault_server(...)` to start one."""

    def __init__(
        self,
        inner: LLM,
        faults: list[Fault],
        seed: int = 0,
        served_name: str | None = None,
        hang_s: float = 30.0,
        keep_bodies: bool = False,
        profile: str | None = None,
    ) -> None:
        from ..llm import create_app

        self.inner = inner
        self.profile: ServerProfile | None = None if profile is None else get_profile(profile)
        self.faults = faults
        self.seed = seed
        self.hang_s = hang_s
        self.keep_bodies = keep_bodies
        self.counters = FaultCounters()
        self.served_name = served_name or inner.model_id
        self._app = create_app(inner, served_name)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="clca-fault-server", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.base_url = ""

    def model_string(self, **options: Any) -> str:
        """An `openai:` model string for this server, e.g. `fs.model_string(max_retries=3, backoff_base=0)`."""
        from ..llm import ModelSpec

        return ModelSpec.remote(self.served_name, [self.base_url], **options).format()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> str:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        port = fut.result(timeout=30)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def _start(self) -> int:
        import httpx

        self._stopping = asyncio.Event()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app), base_url="http://inner")
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        from ..llm import forget_server

        forget_server(self.base_url)  # a later server may reuse the port: its capabilities are its own
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _stop(self) -> None:
        assert self._stopping is not None and self._server is not None
        self._stopping.set()
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    # -- HTTP ---------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if not await self._respond(method, path, headers, body, writer):
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # client went away, or the server is stopping
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must be closed."""
        c = self.counters
        if "authorization" in headers:
            c.auth_digests.add(hashlib.sha256(headers["authorization"].encode()).hexdigest())
        if self.profile is not None and body_key(body) in c.refused_bodies:
            c.repeated_refusals += 1
        if self.profile is not None and method == "POST" and path.rstrip("/") == _COMPLETIONS_PATH:
            c.completions += 1
            try:
                req = json.loads(body)
            except ValueError:
                req = None
            req = req if isinstance(req, dict) else {}
            status, data = await completions(self.profile, self.inner, self.served_name, req)
            await _write(writer, status, json.dumps(data).encode())
            return True
        if not (method == "POST" and path.rstrip("/") == _CHAT_PATH):
            c.other_requests += 1
            status, out, _ = await self._forward(method, path, body)
            await _write(writer, status, out)
            return True
        c.requests += 1
        n = c.requests
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            return await self._respond_chat(n, body, writer)
        finally:
            c.in_flight -= 1

    async def _respond_chat(self, n: int, body: bytes, writer: asyncio.StreamWriter) -> bool:
        c, method, path = self.counters, "POST", _CHAT_PATH
        if self.keep_bodies:
            with contextlib.suppress(ValueError):
                c.request_bodies.append(json.loads(body))
        fault = next((f for i, f in enumerate(self.faults) if f.matches(n, self.seed, i)), None)
        kind = None if fault is None else fault.kind
        if fault is not None:
            c.faults[fault.kind if fault.kind != "status" else f"status {fault.status}"] += 1
        if fault is None or kind == "delay":
            if fault is not None:
                await asyncio.sleep(fault.delay)
            if self.profile is not None:
                return await self._respond_profile(body, writer)
            status, out, _ = await self._forward(method, path, body)
            c.ok += status == 200
            await _write(writer, status, out)
            return True
        assert fault is not None
        if kind == "status":
            msg = {"error": {"message": f"injected fault: HTTP {fault.status}", "type": "fault", "code": fault.status}}
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            await _write(writer, fault.status, json.dumps(msg).encode(), extra)
            return True
        if kind == "drop":
            return False
        if kind == "timeout":
            assert self._stopping is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=fault.delay or self.hang_s)
            return False
        if kind == "invalid_json":
            await _write(writer, 200, b'{"id": "chatcmpl-fault", "choices": [{"index": 0, "message": ')
            return True
        status, out, data = await self._forward(method, path, body)
        if kind == "truncate":
            await _write(writer, status, out, truncate=True)
            return False
        # bad_schema: a well-formed completion whose content violates any useful schema
        if isinstance(data, dict) and isinstance(data.get("choices"), list):
            for ch in data["choices"]:
                ch["message"] = {"role": "assistant", "content": BAD_SCHEMA_CONTENT}
            out = json.dumps(data).encode()
        await _write(writer, status, out)
        return True

    async def _respond_profile(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """A healthy chat request, answered as the profile's real server would."""
        assert self.profile is not None
        c = self.counters
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        refused = self.profile.screen(req) if isinstance(req, dict) else None
        if refused is not None:
            status, message = refused
            c.refusals[f"{status} {message}"] += 1
            c.refused_bodies.add(body_key(body))
            err = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
            await _write(writer, status, json.dumps(err).encode())
            return True
        fwd = self.profile.rewrite(req) if isinstance(req, dict) else req
        status, out, data = await self._forward("POST", _CHAT_PATH, json.dumps(fwd).encode())
        if status == 200 and isinstance(data, dict):
            out = json.dumps(self.profile.clean(data)).encode()
        c.ok += status == 200
        await _write(writer, status, out)
        return True

    async def _forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes, Any]:
        r = await self._client.request(method, path, content=body, headers={"content-type": "application/json"})
        try:
            data = r.json()
        except ValueError:
            data = None
        return r.status_code, r.content, data


async def _write(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    extra: dict[str, str] | None = None,
    truncate: bool = False,
) -> None:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    writer.write(body[: len(body) // 2] if truncate else body)
    await writer.drain()


@contextlib.contextmanager
def fault_server(
    inner: LLM,
    *faults: Fault,
    seed: int = 0,
    served_name: str | None = None,
    hang_s: float = 30.0,
    keep_bodies: bool = False,
    profile: str | None = None,
) -> Iterator[FaultServer]:
    """Start a FaultServer for `inner` with the given schedule; yields it (`.base_url`, `.counters`).
    `profile` (vllm, llamacpp, ollama, json_mode, chat_only) makes it accept and refuse what that server does."""
    fs = FaultServer(
        inner, list(faults), seed=seed, served_name=served_name, hang_s=hang_s, keep_bodies=keep_bodies, profile=profile
    )
    fs.start()
    try:
        yield fs
    finally:
        fs.stop()
