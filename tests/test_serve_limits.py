"""`clca serve` protects itself: limits refused up front, OpenAI-style errors for every status, an optional
API key, upstream errors mapped without URLs, and the work of a disconnected client cancelled."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from clca.llm import ChatResult, GenParams, MockLLM
from clca.llm.serving import ServeLimits, serve_in_thread


def _post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str, method: str = "GET") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _is_openai_error(body: dict, status: int) -> bool:
    err = body.get("error")
    return isinstance(err, dict) and err.get("code") == status and isinstance(err.get("message"), str)


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"max_tokens": 1_000_000_000}, "max_tokens 1000000000 is over this server's limit of 64"),
        ({"max_completion_tokens": 65}, "over this server's limit of 64"),
        ({"n": 3}, "n 3 is over this server's limit of 2"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools is not supported"),
        ({"logit_bias": {"1": 5}}, "logit_bias is not supported"),
    ],
)
def test_requests_beyond_the_limits_are_refused_with_400(extra: dict, fragment: str) -> None:
    limits = ServeLimits(max_tokens_limit=64, max_n=2)
    with serve_in_thread(MockLLM(["ok"]), limits=limits) as url:
        status, body = _post(f"{url}/chat/completions", {"messages": MSG, **extra})
        assert status == 400 and _is_openai_error(body, 400) and fragment in body["error"]["message"], body
        ok, _ = _post(f"{url}/chat/completions", {"messages": MSG, "max_tokens": 64, "n": 2})
        assert ok == 200


def test_body_limit_and_openai_style_404_405() -> None:
    with serve_in_thread(MockLLM(["ok"]), limits=ServeLimits(max_body_mb=0.01)) as url:
        big = {"messages": [{"role": "user", "content": "x" * 20_000}]}
        status, body = _post(f"{url}/chat/completions", big)
        assert status == 413 and _is_openai_error(body, 413), body
        status, body = _get(f"{url}/nowhere")
        assert status == 404 and _is_openai_error(body, 404), body
        status, body = _get(f"{url}/chat/completions")
        assert status == 405 and _is_openai_error(body, 405), body


def test_a_prompt_over_the_token_limit_is_refused_before_any_work(embedded_llm) -> None:  # noqa: ANN001
    assert embedded_llm.tokenizer is not None  # loaded before the server (as `clca serve` does)
    with serve_in_thread(embedded_llm, limits=ServeLimits(max_prompt_tokens=50)) as url:
        long = [{"role": "user", "content": "word " * 200}]
        status, body = _post(f"{url}/chat/completions", {"messages": long, "max_tokens": 4})
        assert status == 400 and "tokens, over this server's limit of 50" in body["error"]["message"], body


def test_api_key_is_required_when_set() -> None:
    with serve_in_thread(MockLLM(["ok"]), limits=ServeLimits(api_key="s3cret-key")) as url:
        status, body = _post(f"{url}/chat/completions", {"messages": MSG})
        assert status == 401 and _is_openai_error(body, 401)
        status, _ = _post(f"{url}/chat/completions", {"messages": MSG}, {"Authorization": "Bearer wrong"})
        assert status == 401
        status, body = _post(f"{url}/chat/completions", {"messages": MSG}, {"Authorization": "Bearer s3cret-key"})
        assert status == 200 and body["choices"][0]["message"]["content"] == "ok"
        from clca.llm import load_model

        async def via_client() -> str:
            import os

            os.environ["CLCA_TEST_SERVE_KEY"] = "s3cret-key"
            llm = load_model(f"openai:mock@{url}?api_key_env=CLCA_TEST_SERVE_KEY&max_retries=0", cache=False)
            try:
                return (await llm.chat(MSG)).text
            finally:
                await llm.aclose()
                del os.environ["CLCA_TEST_SERVE_KEY"]

        assert asyncio.run(via_client()) == "ok"


def test_proxy_maps_an_upstream_401_without_naming_the_upstream_url() -> None:
    from clca.llm import load_model
    from clca.testing import Fault, fault_server

    with fault_server(MockLLM(["x"]), Fault(kind="status", status=401)) as up:
        proxy = load_model(up.model_string(max_retries=0), cache=False)
        with serve_in_thread(proxy, served_name="p") as url:
            status, body = _post(f"{url}/chat/completions", {"messages": MSG})
    assert status == 502 and _is_openai_error(body, 502), body
    assert "credentials" in body["error"]["message"] and up.base_url not in json.dumps(body)
    assert "127.0.0.1" not in json.dumps(body)


class _Slow(MockLLM):
    """A backend whose answer takes long; records whether its work was cancelled."""

    def __init__(self) -> None:
        super().__init__(["late"])
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def chat(self, messages, params: GenParams = GenParams()) -> ChatResult:  # noqa: ANN001
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return await super().chat(messages, params)


def test_work_of_a_disconnected_client_is_cancelled() -> None:
    slow = _Slow()
    with serve_in_thread(slow) as url:
        host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
        body = json.dumps({"messages": MSG}).encode()
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert slow.started.wait(10)
        sock.close()  # the client goes away
        assert slow.cancelled.wait(10), "the backend kept working for a client that left"


def test_cancelled_requests_are_dropped_from_the_batch_queue() -> None:
    from clca.llm.engine import Batcher

    ran: list[Any] = []
    gate = threading.Event()

    def run_gen(rows: list[Any]) -> list[Any]:
        gate.wait(10)
        ran.extend(rows)
        return rows

    b = Batcher(run_gen=run_gen, run_score=lambda jobs: jobs, setup=lambda: None, max_batch=1)

    async def go() -> None:
        first = asyncio.ensure_future(b.submit_gen(["a"], [1]))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(b.submit_gen(["b"], [1]))
        await asyncio.sleep(0.05)
        second.cancel()
        gate.set()
        assert await first == ["a"]

    asyncio.run(go())
    b.close()
    assert ran == ["a"]
