"""OpenAI-compatible backend: model strings, retries, replicas, keys, structured output, scoring paths.

A real HTTP server on loopback (clca.testing.fault_server around MockLLM) stands in for vLLM.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time

import pytest
from pydantic import BaseModel

from clca.errors import BackendError, ModelStringError, StructuredOutputError, UnsupportedError
from clca.llm import GenParams, MockLLM, load_model
from clca.llm._spec import openai_config
from clca.llm.backends import OpenAIConfig, OpenAIModel
from clca.llm.backends._openai_scoring import first_token_logprobs, option_logprob
from clca.testing import Fault, fault_server

HI = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    answer: str
    n: int


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def model(fs, **opts):  # noqa: ANN001, ANN003, ANN201
    return load_model(fs.model_string(**{"backoff_base": 0, **opts}), cache=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- model strings -------------------------------------------------------------------------------
def test_model_string_parsing_and_options() -> None:
    cfg = openai_config(
        "openai:meta/llama3:8b@http://10.0.0.1:8000/v1,http://10.0.0.2:8000?concurrency=4&timeout=5", OpenAIConfig
    )
    assert cfg.model == "meta/llama3:8b"
    assert cfg.base_urls == ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]  # /v1 added when no path
    assert (cfg.concurrency, cfg.timeout, cfg.api_key_env) == (4, 5.0, "OPENAI_API_KEY")
    # keyword options override the string's
    assert openai_config("openai:m@http://h/v1?max_retries=2", OpenAIConfig, max_retries=7).max_retries == 7


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("gpt4", "unknown model string"),
        ("openai:gpt-4o", "expected 'openai:MODEL@"),
        ("openai:@http://h/v1", "expected 'openai:MODEL@"),
        ("openai:m@ftp://h/v1", "expected 'openai:MODEL@"),
        ("openai:m@http://h/v1,http://h/v1", "listed twice"),
        ("openai:m@http://h:99999/v1", "invalid port"),
        ("openai:m@http://h/v1?concurrency=0", "option concurrency"),
        ("openai:m@http://h/v1?colour=blue", "option colour"),
        ("openai:m@http://h/v1?scoring=magic", "option scoring"),
        ("hf:", "names no path"),
        ("embedded+lora", "expected '+lora:ADAPTER_DIR'"),
        ("", "empty model string"),
    ],
)
def test_bad_model_strings_are_one_line_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ModelStringError) as ei:
        load_model(spec, cache=False)
    assert fragment in str(ei.value)
    assert "\n" not in ei.value.one_line()


def test_api_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLCA_TEST_KEY", raising=False)
    # loopback servers get a dummy key when the variable is unset
    assert (
        OpenAIModel(openai_config("openai:m@http://127.0.0.1:1/v1?api_key_env=CLCA_TEST_KEY", OpenAIConfig))._key
        == "EMPTY"
    )
    with pytest.raises(BackendError) as ei:
        load_model("openai:m@https://api.example.com/v1?api_key_env=CLCA_TEST_KEY", cache=False)
    assert "CLCA_TEST_KEY" in str(ei.value)
    # one non-loopback replica is enough to require the key
    with pytest.raises(BackendError):
        load_model("openai:m@http://127.0.0.1:1/v1,https://api.example.com/v1?api_key_env=CLCA_TEST_KEY", cache=False)


# -- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault, reason",
    [
        (Fault(kind="status", status=429, first=3), "HTTP 429"),
        (Fault(kind="status", status=500, first=3), "HTTP 500"),
        (Fault(kind="status", status=503, first=3), "HTTP 503"),
        (Fault(kind="drop", first=3), "connection"),
        (Fault(kind="truncate", first=3), "connection"),
        (Fault(kind="invalid_json", first=3), "invalid body"),
    ],
)
def test_retries_transient_faults_then_succeeds(fault: Fault, reason: str) -> None:
    with fault_server(MockLLM(["hello"]), fault) as fs:
        llm = model(fs, max_retries=3)
        assert run(llm.chat(HI)).text == "hello"
        assert fs.counters.requests == 4  # three failures, then success
        assert fs.counters.ok == 1
        assert llm.stats.retries == 3 and llm.stats.failures == {reason: 3}


def test_retries_timeouts() -> None:
    with fault_server(MockLLM(["hello"]), Fault(kind="timeout", first=2), hang_s=10) as fs:
        llm = model(fs, max_retries=2, timeout=0.3)
        assert run(llm.chat(HI)).text == "hello"
        assert fs.counters.requests == 3
        assert llm.stats.failures == {"timeout": 2}


def test_gives_up_after_bounded_attempts() -> None:
    with fault_server(MockLLM(["hello"]), Fault(kind="status", status=503)) as fs:
        llm = model(fs, max_retries=2)
        with pytest.raises(BackendError) as ei:
            run(llm.chat(HI))
        assert fs.counters.requests == 3
        assert "gave up after 3 attempts" in str(ei.value) and "HTTP 503" in str(ei.value)


def test_every_third_request_fails_and_all_calls_succeed() -> None:
    with fault_server(MockLLM(["x"]), Fault(kind="status", status=500, every=3)) as fs:
        llm = model(fs, max_retries=2)

        async def many() -> list[str]:
            return [(await llm.chat(HI)).text for _ in range(6)]

        assert run(many()) == ["x"] * 6
        # requests 3, 6, 9 failed: 6 successes need 8 requests
        assert fs.counters.requests == 8 and fs.counters.faults["status 500"] == 2


def test_non_retryable_400_fails_at_once() -> None:
    with fault_server(MockLLM(["x"]), Fault(kind="status", status=400)) as fs:
        llm = model(fs, max_retries=5)
        with pytest.raises(BackendError) as ei:
            run(llm.chat(HI))
        assert fs.counters.requests == 1
        assert "HTTP 400" in str(ei.value) and llm.stats.retries == 0


def test_retry_after_is_honoured() -> None:
    with fault_server(MockLLM(["x"]), Fault(kind="status", status=429, first=2, retry_after=0.25)) as fs:
        llm = model(fs, max_retries=3, backoff_max=5)
        t0 = time.monotonic()
        run(llm.chat(HI))
        # backoff_base=0 would retry at once; the two waits come from Retry-After
        assert time.monotonic() - t0 >= 0.5
        assert fs.counters.requests == 3


def test_unreachable_server_is_a_backend_error() -> None:
    llm = load_model(f"openai:m@http://127.0.0.1:{free_port()}/v1?max_retries=1&backoff_base=0", cache=False)
    with pytest.raises(BackendError) as ei:
        run(llm.chat(HI))
    assert "gave up after 2 attempts" in str(ei.value) and "connection failed" in str(ei.value)


def test_concurrency_is_bounded() -> None:
    with fault_server(MockLLM(["x"]), Fault(kind="delay", delay=0.05)) as fs:
        llm = model(fs, concurrency=3)

        async def burst() -> None:
            await asyncio.gather(*(llm.chat(HI) for _ in range(12)))

        run(burst())
        assert fs.counters.requests == 12
        assert fs.counters.max_in_flight == 3


# -- replicas ---------------------------------------------------------------------------------------
def test_replicas_share_the_load() -> None:
    with (
        fault_server(MockLLM(["a"]), Fault(kind="delay", delay=0.02)) as a,
        fault_server(MockLLM(["a"]), Fault(kind="delay", delay=0.02)) as b,
    ):
        llm = load_model(f"openai:mock@{a.base_url},{b.base_url}", cache=False)

        async def burst() -> None:
            await asyncio.gather(*(llm.chat(HI) for _ in range(20)))

        run(burst())
        assert a.counters.requests + b.counters.requests == 20
        assert a.counters.requests >= 5 and b.counters.requests >= 5


def test_dead_replica_is_skipped() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with fault_server(MockLLM(["a"])) as live:
        llm = load_model(f"openai:mock@{dead},{live.base_url}?backoff_base=0&replica_cooldown=60", cache=False)

        async def seq() -> list[str]:
            return [(await llm.chat(HI)).text for _ in range(10)]

        assert run(seq()) == ["a"] * 10
        assert live.counters.requests == 10
        # the dead replica is tried until it has failed twice in a row, then skipped
        assert llm.replica_requests[dead] == 2


# -- API key hygiene -------------------------------------------------------------------------------
def test_api_key_never_leaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], tmp_path
) -> None:  # noqa: ANN001
    import hashlib

    key = "sk-clca-planted-4b1d7e0c9a"
    monkeypatch.setenv("CLCA_PLANTED_KEY", key)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with fault_server(
        MockLLM(["ok"]), Fault(kind="status", status=500, first=1), Fault(kind="status", status=401, requests=[3])
    ) as fs:
        llm = load_model(fs.model_string(api_key_env="CLCA_PLANTED_KEY", backoff_base=0), cache=tmp_path / "c.sqlite")
        texts += [repr(llm), repr(llm.inner), str(llm.inner.config)]
        texts.append(run(llm.chat(HI)).text)  # request 1 fails (500), request 2 succeeds
        with pytest.raises(BackendError) as ei:
            run(llm.chat([{"role": "user", "content": "again"}]))  # request 3: 401
        texts += [str(ei.value), repr(ei.value)]
        # the server did receive the key
        assert hashlib.sha256(f"Bearer {key}".encode()).hexdigest() in fs.counters.auth_digests
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    texts.append((tmp_path / "c.sqlite").read_bytes().decode("latin-1"))
    assert "HTTP 401" in texts[-5]
    for t in texts:
        assert key not in t


# -- structured output -------------------------------------------------------------------------------
def test_structured_sends_json_schema_and_validates() -> None:
    with fault_server(MockLLM(['{"answer": "yes", "n": 2}']), keep_bodies=True) as fs:
        llm = model(fs)
        obj = run(llm.structured(HI, Answer))
        assert obj == Answer(answer="yes", n=2)
        rf = fs.counters.request_bodies[0]["response_format"]
        assert rf["type"] == "json_schema"
        assert rf["json_schema"]["name"] == "Answer"
        assert rf["json_schema"]["schema"]["required"] == ["answer", "n"]
        assert rf["json_schema"]["strict"] is False  # pydantic's schema is not closed (additionalProperties)


def test_structured_reasks_then_raises_after_bound() -> None:
    with fault_server(MockLLM(['{"answer": "yes", "n": 2}']), Fault(kind="bad_schema")) as fs:
        llm = model(fs)
        with pytest.raises(StructuredOutputError) as ei:
            run(llm.structured(HI, Answer, max_attempts=3))
        assert fs.counters.requests == 3 and ei.value.attempts == 3


def test_structured_recovers_on_reask() -> None:
    with fault_server(MockLLM(['{"answer": "yes", "n": 2}']), Fault(kind="bad_schema", first=1)) as fs:
        llm = model(fs)
        assert run(llm.structured(HI, Answer)).n == 2
        assert fs.counters.requests == 2


def test_n_samples_and_params_are_sent() -> None:
    with fault_server(MockLLM(["s"]), keep_bodies=True) as fs:
        llm = model(fs)
        res = run(llm.chat(HI, GenParams(temperature=0.7, top_p=0.9, max_tokens=7, stop=("\n",), seed=5, n=3)))
        assert res.texts == ["s", "s", "s"]
        body = fs.counters.request_bodies[0]
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["seed"], body["n"]) == (
            0.7,
            0.9,
            7,
            ["\n"],
            5,
            3,
        )


# -- scoring -----------------------------------------------------------------------------------------
def _vllm_entry(tok: str, lp: float, tid: int = 7) -> dict:
    return {str(tid): {"logprob": lp, "rank": 1, "decoded_token": tok}}


def test_option_logprob_sums_trailing_tokens() -> None:
    plps = [None, _vllm_entry("<|im_start|>", -1.0), _vllm_entry("assistant", -2.0), _vllm_entry("\n", -0.5)]
    plps += [_vllm_entry("Some", -0.25), _vllm_entry("times", -0.5)]
    assert option_logprob(plps, "Sometimes") == pytest.approx(-0.75)
    # a first token merged with the preceding newline still counts
    merged = plps[:3] + [_vllm_entry("\nNo", -0.125)]
    assert option_logprob(merged, "No") == pytest.approx(-0.125)
    # a template that appends an end-of-turn token is detected, not silently mis-scored
    with pytest.raises(BackendError, match="continue_final_message"):
        option_logprob(plps + [_vllm_entry("<|im_end|>", -0.1)], "Sometimes")


def test_first_token_mapping_requires_distinct_first_tokens() -> None:
    top = [("Yes", -0.1), ("No", -2.0), (" Yes", -3.0), ("1", -4.0)]
    logps, owners = first_token_logprobs(top, ["Yes", "No", "Maybe"])
    assert logps[:2] == [-0.1, -2.0] and logps[2] == -math.inf
    _, owners = first_token_logprobs(top, ["1", "10"])
    assert owners["1"] == ["1", "10"]  # both would be scored by the same token


def test_scoring_unsupported_server_is_clear() -> None:
    with fault_server(MockLLM(["x"])) as fs:  # MockLLM offers no logprobs: the server answers 400
        llm = model(fs)
        with pytest.raises(UnsupportedError, match="neither vLLM prompt_logprobs nor top_logprobs"):
            run(llm.score_options(HI, ["a", "b"]))
        assert llm.scoring_path is None


def test_one_model_serves_several_event_loops() -> None:
    with fault_server(MockLLM(["x"])) as fs:
        llm = model(fs)
        for _ in range(3):  # each asyncio.run has its own loop; the HTTP pool follows it
            assert run(llm.chat(HI)).text == "x"
        run(llm.aclose())


def test_probabilistic_faults_are_reproducible() -> None:
    injected = []
    for _ in range(2):
        with fault_server(MockLLM(["x"]), Fault(kind="status", status=503, prob=0.4), seed=11) as fs:
            llm = model(fs, max_retries=10)

            async def seq(m) -> None:  # noqa: ANN001
                for _ in range(8):
                    await m.chat(HI)

            run(seq(llm))
            injected.append((fs.counters.requests, fs.counters.faults["status 503"]))
    assert injected[0] == injected[1] and injected[0][1] > 0
    assert injected[0][0] == 8 + injected[0][1]
