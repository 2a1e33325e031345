"""The openai backend against the real `clca serve` of the embedded model agrees with the in-process backend."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from clca.llm import GenParams, load_model
from clca.llm.serving import serve_in_thread

pytestmark = pytest.mark.slow

QUESTION = [
    {"role": "system", "content": "You answer survey questions with one of the given options."},
    {"role": "user", "content": "Do you agree that hard work brings success? Options: Yes, No, Unsure."},
]


class Reply(BaseModel):
    agree: bool


@pytest.fixture(scope="module")
def remote(embedded_llm):  # noqa: ANN001, ANN201
    inner = getattr(embedded_llm, "inner", embedded_llm)
    with serve_in_thread(inner) as url:
        yield inner, url


def _model(url: str, inner, **opts):  # noqa: ANN001, ANN003, ANN202
    return load_model(f"openai:{inner.model_id}@{url}?timeout=900", cache=False, **opts)


def test_option_distribution_matches_in_process(remote) -> None:  # noqa: ANN001
    inner, url = remote
    multi = ["Yes", "No", "Not sure at all"]  # multi-token options: prompt-logprob path only
    single = ["Yes", "No"]  # single-token options: both paths
    auto = _model(url, inner)
    top = _model(url, inner, scoring="top_logprobs")

    async def go() -> tuple[list[float], ...]:
        return (
            await inner.score_options(QUESTION, multi),
            await auto.score_options(QUESTION, multi),
            await inner.score_options(QUESTION, single),
            await top.score_options(QUESTION, single),
        )

    ref_multi, got_multi, ref_single, got_top = asyncio.run(go())
    assert auto.scoring_path == "prompt_logprobs"  # auto found vLLM-style prompt logprobs
    assert got_multi == pytest.approx(ref_multi, abs=1e-4)
    assert got_top == pytest.approx(ref_single, abs=1e-4)
    assert sum(got_multi) == pytest.approx(1.0) and sum(got_top) == pytest.approx(1.0)


def test_chat_and_structured_through_the_server(remote) -> None:  # noqa: ANN001
    inner, url = remote
    llm = _model(url, inner)
    p = GenParams(max_tokens=6)

    async def go():  # noqa: ANN202
        return await llm.chat(QUESTION, p), await inner.chat(QUESTION, p)

    remote_res, local_res = asyncio.run(go())
    assert remote_res.text == local_res.text and remote_res.text.strip()  # greedy: identical text
    reply = asyncio.run(llm.structured(QUESTION, Reply, GenParams(max_tokens=16)))
    assert isinstance(reply, Reply) and isinstance(reply.agree, bool)
