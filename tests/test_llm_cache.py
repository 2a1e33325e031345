"""Response cache: hits make zero model calls, sampled requests follow the seed rule, WAL writers."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from pathlib import Path

import pytest
from pydantic import BaseModel

from clca.errors import StructuredOutputError
from clca.llm import GenParams, MockLLM, load_model
from clca.llm._cache import CachedLLM, ResponseCache

HI = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    answer: str


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def counting(responses=("a", "b", "c")) -> MockLLM:  # noqa: ANN001
    return MockLLM(list(responses), option_probs=lambda _m, opts: [1 / len(opts)] * len(opts))


def test_deterministic_chat_hit_makes_no_model_call(tmp_path: Path) -> None:
    inner = counting()
    llm = CachedLLM(inner, path=tmp_path / "r.sqlite")
    first = run(llm.chat(HI))
    second = run(llm.chat(HI))
    assert len(inner.calls) == 1
    assert second.texts == first.texts == ["a"] and second.cached and not first.cached
    # the seed does not matter at temperature 0
    assert run(llm.chat(HI, GenParams(seed=9))).texts == ["a"] and len(inner.calls) == 1
    # other parameters do
    run(llm.chat(HI, GenParams(max_tokens=5)))
    assert len(inner.calls) == 2
    assert (llm.stats.hits, llm.stats.misses) == (2, 2)


def test_cache_survives_a_new_process_object(tmp_path: Path) -> None:
    run(CachedLLM(counting(), path=tmp_path / "r.sqlite").chat(HI))
    inner = counting(["different"])
    again = CachedLLM(inner, path=tmp_path / "r.sqlite")
    assert run(again.chat(HI)).texts == ["a"] and inner.calls == []


def test_sampled_requests_cached_only_with_seed(tmp_path: Path) -> None:
    inner = counting()
    llm = CachedLLM(inner, path=tmp_path / "r.sqlite")
    hot = GenParams(temperature=0.8)
    run(llm.chat(HI, hot))
    run(llm.chat(HI, hot))
    assert len(inner.calls) == 2 and llm.stats.uncacheable == 2  # unseeded: always a fresh sample
    seeded = GenParams(temperature=0.8, seed=1, n=2)
    r1 = run(llm.chat(HI, seeded))
    r2 = run(llm.chat(HI, seeded))
    assert len(inner.calls) == 3 and r1.texts == r2.texts  # same seed: the stored samples, in order
    run(llm.chat(HI, GenParams(temperature=0.8, seed=2, n=2)))
    assert len(inner.calls) == 4  # another seed: another key


def test_structured_and_scores_are_cached_and_failures_are_not(tmp_path: Path) -> None:
    inner = MockLLM(['{"answer": "x"}'], option_probs=lambda _m, _o: [0.25, 0.75])
    llm = CachedLLM(inner, path=tmp_path / "r.sqlite")
    assert run(llm.structured(HI, Answer)) == run(llm.structured(HI, Answer)) == Answer(answer="x")
    assert run(llm.score_options(HI, ["a", "b"])) == run(llm.score_options(HI, ["a", "b"])) == [0.25, 0.75]
    assert len(inner.calls) == 2
    assert llm.stats.by_method == {"structured": [1, 1], "score_options": [1, 1]}

    bad = MockLLM(["not json"])
    cbad = CachedLLM(bad, path=tmp_path / "r.sqlite")
    for _ in range(2):
        with pytest.raises(StructuredOutputError):
            run(cbad.structured(HI, Answer, max_attempts=2))
    assert len(bad.calls) == 4  # nothing cached for a failure


def test_load_model_wraps_by_default_except_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLCA_CACHE", str(tmp_path))
    assert isinstance(load_model("mock"), MockLLM)
    llm = load_model("openai:m@http://127.0.0.1:1/v1")
    assert isinstance(llm, CachedLLM) and llm.cache.path == tmp_path / "responses.sqlite"
    assert not isinstance(load_model("openai:m@http://127.0.0.1:1/v1", cache=False), CachedLLM)
    assert load_model("openai:m@http://127.0.0.1:1/v1", cache=tmp_path / "x.sqlite").cache.path == tmp_path / "x.sqlite"
    assert llm.config.model == "m"  # attributes pass through to the wrapped backend


def _writer(path: str, worker: int, n: int) -> None:
    cache = ResponseCache(path)
    for i in range(n):
        cache.put(f"{worker}-{i}", "m", "chat", {"i": i, "w": worker})
    cache.close()


def test_concurrent_writers_are_safe(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite")
    ResponseCache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(3)]
    for p in procs:
        p.start()
    _writer(path, 99, 200)  # and this process at the same time
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ResponseCache(path)
    assert len(cache) == 800
    assert cache.get("2-199") == {"i": 199, "w": 2}


def test_concurrent_coroutines_share_the_cache(tmp_path: Path) -> None:
    inner = MockLLM(lambda m, _p: m[-1]["content"].upper())
    llm = CachedLLM(inner, path=tmp_path / "r.sqlite")

    async def burst() -> list[str]:
        msgs = [[{"role": "user", "content": f"q{i % 5}"}] for i in range(20)]
        first = await asyncio.gather(*(llm.chat(m) for m in msgs))
        second = await asyncio.gather(*(llm.chat(m) for m in msgs))
        return [r.text for r in first + second]

    out = run(burst())
    assert out[:20] == out[20:] and out[0] == "Q0"
    assert len(inner.calls) <= 20 and llm.stats.hits >= 20


@pytest.mark.slow
def test_real_model_cache_hit_runs_no_forward_pass(
    embedded_llm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    inner = getattr(embedded_llm, "inner", embedded_llm)
    calls = {"gen": 0, "score": 0}
    batcher = inner.batcher
    real_score = batcher._run_score
    gen_attr = "_decode" if batcher._decode is not None else "_run_gen"  # continuous decoding, or whole batches
    real_gen = getattr(batcher, gen_attr)

    def gen(*args):  # noqa: ANN002, ANN202
        calls["gen"] += 1
        return real_gen(*args)

    def score(job):  # noqa: ANN001, ANN202
        calls["score"] += 1
        return real_score(job)

    monkeypatch.setattr(batcher, gen_attr, gen)
    monkeypatch.setattr(batcher, "_run_score", score)
    llm = CachedLLM(inner, path=tmp_path / "r.sqlite")
    msgs = [{"role": "user", "content": "Name a colour."}]
    p = GenParams(max_tokens=8)
    first = run(llm.chat(msgs, p))
    probs = run(llm.score_options(msgs, ["red", "blue"]))
    assert calls["gen"] >= 1 and calls["score"] >= 1  # the real model ran once for each
    before = dict(calls)
    assert run(llm.chat(msgs, p)).texts == first.texts
    assert run(llm.score_options(msgs, ["red", "blue"])) == probs
    assert calls == before  # no generation or scoring reached the model
    assert llm.stats.hits == 2
