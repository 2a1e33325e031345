"""The `openai:` backend against emulated real servers (clca.testing server profiles): capability probing,
every structured-output and scoring fallback, and no resent body after a deterministic refusal."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel, Field
from test_reliability_support import schema_mock

from clca.errors import BackendError, UnsupportedError
from clca.llm import MockLLM, load_model
from clca.llm.backends._capabilities import capabilities_for, refusal, refused_field
from clca.llm.backends._openai_scoring import echo_option_logprob
from clca.llm.structured import schema_in_words
from clca.testing import fault_server

HI = [{"role": "user", "content": "How important is family in your life?"}]
FAST = {"backoff_base": 0, "max_retries": 3}
EXPECTED_FORM = {
    "vllm": "json_schema",
    "llamacpp": "json_object_schema",
    "ollama": "json_schema",
    "json_mode": "json_object",
    "chat_only": "prompt",
}


class Answer(BaseModel):
    answer: str = Field(max_length=40, description="a short answer")
    confidence: int = Field(ge=0, le=100)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- refusal classification ------------------------------------------------------------------------
def test_deterministic_refusals_are_told_from_transient_errors() -> None:
    r = refusal(500, "response_format.type: Input should be 'text' or 'json_object'")
    assert r is not None and r.field == "response_format.type"
    assert refusal(500, "injected fault: HTTP 500") is None  # a plain 5xx stays transient
    assert refusal(503, "model is loading") is None
    assert refusal(429, "rate limited") is None and refusal(408, "timeout") is None
    r = refusal(400, "unsupported field: logprobs")
    assert r is not None and r.field == "logprobs"
    assert refusal(422, "prompt_logprobs: Extra inputs are not permitted").field == "prompt_logprobs"  # type: ignore[union-attr]
    loc = "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': 'Input should be'}]"
    assert refused_field(loc) == "response_format.type"
    assert refusal(500, "Unsupported parameter 'echo' for this model") is not None


def test_schema_in_words_describes_every_field() -> None:
    text = schema_in_words(Answer)
    assert '"answer" (string, required; at most 40 characters): a short answer' in text
    assert '"confidence" (integer, required; at least 0; at most 100)' in text


def test_echo_option_logprob_sums_the_option_tokens_only() -> None:
    prefix = "<|im_start|>assistant\n"
    toks = ["<|im_start|>", "assistant", "\n", "Not", " very", " important", "!"]
    lps = [None, -1.0, -0.5, -0.25, -0.5, -0.125, -3.0]  # "!" is the generated token (max_tokens=1)
    end = len(prefix + "Not very important")
    assert echo_option_logprob({"tokens": toks, "token_logprobs": lps}, len(prefix), end) == pytest.approx(-0.875)
    merged = {"tokens": ["<|im_start|>", "assistant", "\nNot", " very"], "token_logprobs": [None, -1, -1, -1]}
    with pytest.raises(BackendError, match="merged"):
        echo_option_logprob(merged, len(prefix), len(prefix) + 8)


def test_echo_option_logprob_reads_llamacpp_echo_without_special_token_text() -> None:
    # llama-cpp-python echoes special tokens as '' (BOS dropped) and offsets into that shorter text
    prefix = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    text = prefix + "Not very"
    toks = ["user", "\n", "Hi", "", "\n", "assistant", "\n", "Not", " very", "!"]
    lps = [None, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -0.25, -0.5, -3.0]
    offsets = [0, 4, 5, 7, 7, 8, 17, 18, 21, 26]
    lp = {"tokens": toks, "token_logprobs": lps, "text_offset": offsets}
    got = echo_option_logprob(lp, len(prefix), len(text), text=text, generated=1)
    assert got == pytest.approx(-0.75)
    assert echo_option_logprob({**lp, "tokens": toks[:-1], "token_logprobs": lps[:-1]}, len(prefix), len(text),
                               text=text, generated=0) == pytest.approx(-0.75)  # fmt: skip
    with pytest.raises(BackendError, match="usage.completion_tokens"):
        echo_option_logprob(lp, len(prefix), len(text), text=text)
    merged = {"tokens": ["user", "\nNot", " very", "!"], "token_logprobs": [None, -1.0, -1.0, -1.0]}
    with pytest.raises(BackendError, match="merged"):
        echo_option_logprob(merged, len(prefix), len(text), text=text, generated=1)


def test_echo_option_logprob_rebuilds_offsets_that_do_not_start_at_zero() -> None:
    prefix = "Q: a\nA:"
    toks, lps = ["Q", ":", " a", "\n", "A", ":", " yes", "."], [None, -1.0, -1.0, -1.0, -1.0, -1.0, -0.5, -2.0]
    lp = {"tokens": toks, "token_logprobs": lps, "text_offset": [9 + k for k in (0, 1, 2, 4, 5, 6, 7, 11)]}
    end = len(prefix + " yes")
    assert echo_option_logprob(lp, len(prefix), end, text=prefix + " yes", generated=1) == pytest.approx(-0.5)


# -- structured output: each profile ends on its form, each refused form is sent exactly once ---------
@pytest.mark.parametrize("profile", list(EXPECTED_FORM))
def test_structured_output_falls_back_to_the_form_the_server_takes(profile: str) -> None:
    with fault_server(schema_mock(model_id="m"), profile=profile, keep_bodies=True) as fs:
        llm = load_model(fs.model_string(**FAST), cache=False)

        async def many() -> list[Answer]:
            return list(await asyncio.gather(*(llm.structured(HI + [], Answer) for _ in range(6))))

        objs = run(many())
        assert all(isinstance(o, Answer) for o in objs)
        assert llm.capabilities.structured == EXPECTED_FORM[profile]  # type: ignore[attr-defined]
        refused = sum(fs.counters.refusals.values())
        assert refused == {"vllm": 0, "llamacpp": 1, "ollama": 0, "json_mode": 2, "chat_only": 3}[profile]
        assert fs.counters.repeated_refusals == 0
        assert fs.counters.requests == 6 + refused  # concurrent first calls waited for the probe
        # a second model on the same server reuses what was found: no new refusal
        llm2 = load_model(fs.model_string(**FAST), cache=False)
        run(llm2.structured(HI, Answer))
        assert sum(fs.counters.refusals.values()) == refused
        if profile == "llamacpp":
            first = fs.counters.request_bodies[0]["response_format"]
            assert first["type"] == "json_schema"
            later = fs.counters.request_bodies[-1]["response_format"]
            assert later == {"type": "json_object", "schema": Answer.model_json_schema()}
        if profile == "chat_only":
            last = fs.counters.request_bodies[-1]
            assert "response_format" not in last and '"confidence" (integer' in last["messages"][-1]["content"]


def test_plain_prompt_form_reasks_on_validation_errors() -> None:
    replies = iter(["I think yes.", '{"answer": "yes", "confidence": 70}'])
    inner = MockLLM(lambda _m, _p: next(replies), model_id="m")
    with fault_server(inner, profile="chat_only") as fs:
        llm = load_model(fs.model_string(json_schema="false", **FAST), cache=False)
        obj = run(llm.structured(HI, Answer))
        assert obj.answer == "yes" and fs.counters.requests == 2  # no response_format tried; one re-ask
        assert sum(fs.counters.refusals.values()) == 0


def test_refusal_outside_a_fallback_is_one_line_naming_field_and_server() -> None:
    with fault_server(MockLLM(["x"], model_id="m"), profile="llamacpp") as fs:
        llm = load_model(fs.model_string(max_retries=5, backoff_base=0), cache=False)
        body = {"messages": HI, "max_tokens": 4, "response_format": {"type": "json_schema", "json_schema": {}}}
        with pytest.raises(BackendError) as ei:
            run(llm._request(body))  # type: ignore[attr-defined]
        msg = str(ei.value)
        assert "\n" not in msg and "response_format.type" in msg and fs.base_url in msg and "HTTP 500" in msg
        assert fs.counters.requests == 1  # not retried although it is a 500


# -- scoring on the real embedded model behind each profile -----------------------------------------
SHARED = ["Not very important", "Not at all important", "Rather important"]
DIGITS = [{"role": "user", "content": "Pick one number: 1, 2, 3 or 4. Answer with the number only."}]


@pytest.mark.slow
def test_scoring_paths_per_profile_agree_with_the_in_process_model(embedded_llm: Any) -> None:
    want = run(embedded_llm.score_options(HI, SHARED))
    digits = [str(k) for k in range(1, 5)]
    want_digits = run(embedded_llm.score_options(DIGITS, digits))
    results: dict[str, tuple[str | None, int]] = {}
    for profile, opts in (
        ("llamacpp", {"chat_template": "embedded"}),
        ("vllm", {}),
        ("llamacpp", {}),
        ("json_mode", {}),
        ("ollama", {}),
        ("chat_only", {}),
    ):
        with fault_server(embedded_llm, profile=profile, served_name="smol") as fs:
            llm = load_model(fs.model_string(**FAST, **opts), cache=False)
            path: str | None
            if profile in ("ollama", "chat_only"):
                with pytest.raises(UnsupportedError, match="offers neither"):
                    run(llm.score_options(DIGITS, digits))
                path = llm.capabilities.scoring  # type: ignore[attr-defined]
            elif profile == "vllm" or opts:
                got = run(llm.score_options(HI, SHARED))
                assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-3, (profile, got, want)
                path = llm.scoring_path  # type: ignore[attr-defined]
            else:  # first-token only: fine for digits, refused for shared first tokens (with the hint)
                got = run(llm.score_options(DIGITS, digits))
                assert max(abs(a - b) for a, b in zip(got, want_digits, strict=True)) < 2e-2
                with pytest.raises(UnsupportedError, match="chat_template"):
                    run(llm.score_options(DIGITS, ["1", "1 or 2"]))  # both start with the token "1"
                path = llm.scoring_path  # type: ignore[attr-defined]
            assert fs.counters.repeated_refusals == 0
            results[f"{profile}{'+tpl' if opts else ''}"] = (path, fs.counters.completions)
    assert results["vllm"][0] == "prompt_logprobs"
    assert results["llamacpp+tpl"] == ("completions_echo", len(SHARED))
    assert results["llamacpp"][0] == "top_logprobs" and results["llamacpp"][1] == 0  # no template: echo skipped
    assert results["json_mode"][0] == "top_logprobs"
    assert results["ollama"][0] == "none" and results["chat_only"][0] == "none"
    assert not math.isnan(sum(want))


@pytest.mark.slow
def test_a_client_without_the_chat_template_does_not_take_the_echo_path_another_found(embedded_llm: Any) -> None:
    with fault_server(embedded_llm, profile="llamacpp", served_name="smol") as fs:
        with_tpl = load_model(fs.model_string(**FAST, chat_template="embedded"), cache=False)
        run(with_tpl.score_options(HI, SHARED[:2]))
        assert with_tpl.scoring_path == "completions_echo"  # type: ignore[attr-defined]
        plain = load_model(fs.model_string(**FAST), cache=False)  # same server, same shared record
        assert len(run(plain.score_options(DIGITS, ["1", "2"]))) == 2
        assert plain.scoring_path == "top_logprobs"  # type: ignore[attr-defined]
        assert with_tpl.scoring_path == "completions_echo"  # type: ignore[attr-defined]
        with pytest.raises(UnsupportedError, match="distinct first tokens"):
            run(plain.score_options(DIGITS, ["1", "1 or 2"]))  # both start with the token "1"


def test_capabilities_are_remembered_per_server() -> None:
    a = capabilities_for("m", ["http://127.0.0.1:1/v1"])
    assert capabilities_for("m", ["http://127.0.0.1:1/v1"]) is a
    assert capabilities_for("m", ["http://127.0.0.1:2/v1"]) is not a


def test_clca_renders_the_embedded_chat_template_like_transformers() -> None:
    from transformers import AutoTokenizer

    from clca.llm._embedded import embedded_model_dir
    from clca.llm.backends._chat_template import load_template, render_prompt

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    tpl = load_template("embedded")
    assert tpl is not None
    for msgs in (HI, [{"role": "system", "content": "Be brief."}, *HI]):
        assert render_prompt(tpl[0], tpl[1], msgs) == tok.apply_chat_template(
            msgs, add_generation_prompt=True, tokenize=False
        )


def test_chat_verbose_shows_what_the_server_accepted() -> None:
    from typer.testing import CliRunner

    from clca.cli.main import app

    with fault_server(schema_mock(model_id="m"), profile="llamacpp", served_name="m") as fs:
        spec = fs.model_string(backoff_base=0)
        res = CliRunner().invoke(app, ["chat", "-v", "--json", "--no-cache", "-m", spec, "Is tipping usual?"])
    assert res.exit_code == 0, res.output
    assert "structured output json_object_schema" in res.output
    assert "json_schema: HTTP 500: response_format.type" in res.output
