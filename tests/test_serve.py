"""`clca serve`: the OpenAI-compatible API over a real HTTP socket, with MockLLM and the embedded model."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from pydantic import BaseModel

from clca.llm import MockLLM, load_model
from clca.llm.serving import serve_in_thread
from clca.llm.structured import check_json

HI = [{"role": "user", "content": "hi"}]


class Verdict(BaseModel):
    answer: str
    score: int


def post(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json=body, timeout=120)


def test_models_and_chat_with_mock() -> None:
    seen = []

    def responder(messages, params):  # noqa: ANN001, ANN202
        seen.append(params)
        return "hello"

    with serve_in_thread(MockLLM(responder), served_name="tiny") as url:
        models = httpx.get(f"{url}/models").json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        body = {"model": "tiny", "messages": HI, "temperature": 0.5, "top_p": 0.9, "max_tokens": 9}
        r = post(url, {**body, "stop": "\n", "seed": 3, "n": 2})
        assert r.status_code == 200
        data = r.json()
        assert [c["message"]["content"] for c in data["choices"]] == ["hello", "hello"]
        assert data["object"] == "chat.completion" and data["model"] == "tiny"
        p = seen[0]
        assert (p.temperature, p.top_p, p.max_tokens, p.stop, p.seed, p.n) == (0.5, 0.9, 9, ("\n",), 3, 2)
        # errors in OpenAI's shape
        r = post(url, {"model": "other", "messages": HI})
        assert r.status_code == 404 and "tiny" in r.json()["error"]["message"]
        assert post(url, {"messages": HI, "stream": True}).status_code == 400
        r = post(url, {"messages": HI, "temperature": 5})
        assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
        r = post(url, {"messages": HI, "logprobs": True, "top_logprobs": 3})
        assert r.status_code == 400 and "not supported by this backend" in r.json()["error"]["message"]


def test_response_format_json_schema_is_validated() -> None:
    schema = Verdict.model_json_schema()
    rf = {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": schema, "strict": False}}
    with serve_in_thread(MockLLM(['{"answer": "no"}', '{"answer": "yes", "score": 4}'])) as url:
        r = post(url, {"messages": HI, "response_format": rf, "temperature": 0})
        assert r.status_code == 200
        # the first reply misses `score`: the backend re-asked and the second reply is returned
        assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"answer": "yes", "score": 4}
    with serve_in_thread(MockLLM(["nothing useful"])) as url:
        r = post(url, {"messages": HI, "response_format": rf})
        assert r.status_code == 422 and "no valid Verdict" in r.json()["error"]["message"]


def test_json_schema_subset_checker() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "minimum": 0, "maximum": 3},
            "b": {"enum": ["x", "y"]},
            "c": {"type": "array", "items": {"$ref": "#/$defs/S"}, "maxItems": 2},
        },
        "required": ["a"],
        "additionalProperties": False,
        "$defs": {"S": {"type": "string", "minLength": 1}},
    }
    assert check_json({"a": 1, "b": "x", "c": ["q"]}, schema, schema) is None
    assert "required" in check_json({}, schema, schema)
    assert "<= 3" in check_json({"a": 4}, schema, schema)
    assert "expected integer" in check_json({"a": True}, schema, schema)
    assert "one of" in check_json({"a": 1, "b": "z"}, schema, schema)
    assert "too short" in check_json({"a": 1, "c": [""]}, schema, schema)
    assert "not allowed" in check_json({"a": 1, "d": 0}, schema, schema)


@pytest.fixture(scope="module")
def served(embedded_llm):  # noqa: ANN001, ANN201
    inner = getattr(embedded_llm, "inner", embedded_llm)
    with serve_in_thread(inner) as url:
        yield inner, url


@pytest.mark.slow
def test_logprobs_and_prompt_logprobs_shapes(served) -> None:  # noqa: ANN001
    inner, url = served
    msgs = [{"role": "user", "content": "Is water wet? Answer Yes or No."}]
    r = post(url, {"messages": msgs, "max_tokens": 2, "temperature": 0, "logprobs": True, "top_logprobs": 5})
    assert r.status_code == 200
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert 1 <= len(content) <= 2 and len(content[0]["top_logprobs"]) == 5
    assert content[0]["logprob"] <= 0 and content[0]["top_logprobs"][0]["logprob"] >= content[0]["logprob"] - 1e-6
    cont = {"messages": msgs + [{"role": "assistant", "content": "Yes indeed"}], "max_tokens": 1}
    body = {**cont, "add_generation_prompt": False, "continue_final_message": True, "prompt_logprobs": 0}
    r = post(url, body)
    assert r.status_code == 200
    plps = r.json()["prompt_logprobs"]
    assert plps[0] is None and all(len(e) == 1 for e in plps[1:])
    entries = [next(iter(e.values())) for e in plps[1:]]
    assert "".join(e["decoded_token"] for e in entries) == "Yes indeed"
    want = asyncio.run(inner.continuation_logprobs(msgs, "Yes indeed"))
    assert [e["logprob"] for e in entries] == pytest.approx([t.logprob for t in want], abs=1e-4)
    # half-specified vLLM options are refused, not guessed
    assert post(url, {**cont, "prompt_logprobs": 0}).status_code == 400


@pytest.mark.slow
def test_concurrent_requests_reach_the_batcher_together(served) -> None:  # noqa: ANN001
    inner, url = served
    before = inner.batcher.stats.largest
    inner.batcher.stats.largest = 0

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=300) as client:
            bodies = [
                {"messages": [{"role": "user", "content": f"Say the number {i}."}], "max_tokens": 2, "temperature": 0}
                for i in range(4)
            ]
            rs = await asyncio.gather(*(client.post(f"{url}/chat/completions", json=b) for b in bodies))
            return [r.status_code for r in rs]

    try:
        assert asyncio.run(burst()) == [200] * 4
        assert inner.batcher.stats.largest >= 2  # several HTTP requests decoded in one batch
    finally:
        inner.batcher.stats.largest = max(before, inner.batcher.stats.largest)


def test_openai_backend_against_served_mock_uses_served_name() -> None:
    with serve_in_thread(MockLLM(["pong"]), served_name="tiny") as url:
        llm = load_model(f"openai:tiny@{url}", cache=False)
        assert asyncio.run(llm.chat(HI)).text == "pong"
