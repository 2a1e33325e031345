"""The in-process HF backend on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from clca.errors import ModelStringError
from clca.llm import GenParams, LogprobLLM
from clca.llm.backends import HFModel

U = "user"


def _m(text: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": U, "content": text}]


@pytest.fixture(scope="module")
def hf() -> Iterator[HFModel]:
    model = HFModel.from_spec("embedded")
    yield model
    asyncio.run(model.aclose())


# ------------------------------------------------------------------------------------------------ no model needed


def test_bad_paths_raise_model_string_error(tmp_path: Path) -> None:
    with pytest.raises(ModelStringError, match="not found"):
        HFModel.from_spec(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(ModelStringError, match="adapter"):
        HFModel.from_spec(f"embedded+lora:{tmp_path / 'nope'}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(ModelStringError, match="safetensors"):
        HFModel.from_spec(f"hf:{tmp_path / 'm'}")
    with pytest.raises(ModelStringError):
        HFModel.from_spec("hf:")
    with pytest.raises(ModelStringError):
        HFModel.from_spec("bogus")


def test_options_in_the_model_string() -> None:
    m = HFModel.from_spec("embedded?max_batch=64&prefix_cache_mb=0&torch_threads=1&ignore_eos=true")
    assert (m.batcher.max_batch, m._prefix_cache_mb, m._torch_threads, m.ignore_eos) == (64, 0, 1, True)
    assert m.model_id == "embedded:SmolLM2-135M-Instruct"  # batching options do not change outputs
    k = HFModel.from_spec("embedded?max_batch=64", max_batch=8)  # keyword options win over the string
    assert k.batcher.max_batch == 8
    assert HFModel.from_spec("embedded?dtype=bfloat16").model_id.endswith(";dtype=bfloat16")  # precision does


def test_model_string_options_reach_the_loaded_engine() -> None:
    from clca.llm import load_model

    llm = load_model("embedded?prefix_cache_mb=0&max_batch=2", cache=False)
    try:
        r = asyncio.run(llm.chat(_m("Say hello."), GenParams(max_tokens=4)))
        assert r.completion_tokens > 0
        assert llm.engine.prefix_cache_tokens == 0 and not llm.engine._prefix_cache  # type: ignore[attr-defined]
        assert llm.batcher.max_batch == 2  # type: ignore[attr-defined]
    finally:
        asyncio.run(llm.aclose())


def test_model_ids_are_stable_and_describe_weights(tmp_path: Path) -> None:
    from clca.llm import embedded_model_dir

    assert HFModel.from_spec("embedded").model_id == "embedded:SmolLM2-135M-Instruct"
    d = embedded_model_dir()
    a, b = HFModel.from_spec(f"hf:{d}"), HFModel.from_spec(f"hf:{d}")
    assert a.model_id == b.model_id and a.model_id.startswith(f"hf:{d.resolve()}#")


# ------------------------------------------------------------------------------------------------ real model


def test_chat_returns_text_and_token_counts(hf: HFModel) -> None:
    assert isinstance(hf, LogprobLLM)
    r = asyncio.run(hf.chat(_m("What is the capital of France?"), GenParams(max_tokens=12)))
    assert r.text.strip()
    assert r.prompt_tokens > 5 and 0 < r.completion_tokens <= 12
    assert r.finish_reasons[0] in ("stop", "length")


def test_seeded_sampling_is_reproducible_and_batch_independent(hf: HFModel) -> None:
    p = GenParams(temperature=1.0, max_tokens=10, seed=7, n=3)
    msgs = _m("Write a short line about the sea.")
    alone = asyncio.run(hf.chat(msgs, p))
    assert len(alone.texts) == 3 and len(set(alone.texts)) > 1  # n independent samples

    async def crowded() -> list:
        others = [hf.chat(_m(f"Name a colour number {i}."), GenParams(max_tokens=6)) for i in range(4)]
        res = await asyncio.gather(*others, hf.chat(msgs, p))
        return res

    before = hf.batcher.stats.largest
    again = asyncio.run(crowded())[-1]
    assert again.texts == alone.texts
    assert hf.batcher.stats.largest >= max(before, 7)  # the request really shared a batch with the others
    other_seed = asyncio.run(hf.chat(msgs, GenParams(temperature=1.0, max_tokens=10, seed=8, n=3)))
    assert other_seed.texts != alone.texts


def test_stop_strings_are_respected(hf: HFModel) -> None:
    msgs = _m("Write one sentence about cats.")
    free = asyncio.run(hf.chat(msgs, GenParams(max_tokens=12)))
    assert " " in free.text.strip()  # otherwise the check below would prove nothing
    stopped = asyncio.run(hf.chat(msgs, GenParams(max_tokens=12, stop=(" ",))))
    assert " " not in stopped.text and stopped.finish_reasons == ["stop"]
    assert free.text.startswith(stopped.text)


def test_batched_greedy_equals_unbatched(hf: HFModel) -> None:
    prompts = [
        _m("Hi"),
        _m("Explain in one sentence why the sky looks blue during the day."),
        _m("List three fruits.", system="You are terse."),
        _m("What is 2 + 2?"),
    ]
    # different lengths: rows leave the batch mid-way (the decoding cache drops them in place)
    ps = [GenParams(max_tokens=n) for n in (12, 3, 12, 7)]
    single = [asyncio.run(hf.chat(m, p)).text for m, p in zip(prompts, ps, strict=True)]

    async def together() -> list:
        return await asyncio.gather(*[hf.chat(m, p) for m, p in zip(prompts, ps, strict=True)])

    hf.engine._prefix_cache.clear()  # force one left-padded prefill of all four prompts
    batched = [r.text for r in asyncio.run(together())]
    assert batched == single


def test_reserved_decoding_cache_holds_what_a_growing_cache_holds() -> None:
    import torch
    from transformers.cache_utils import DynamicLayer

    from clca.llm.engine._kvcache import _ReservedLayer

    g = torch.Generator().manual_seed(0)
    k0, v0 = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g)
    ref, res = DynamicLayer(), _ReservedLayer(k0, v0, reserve=2)  # 2 steps fit, the third must grow the buffer
    ref.update(k0, v0)
    buffer = res._kbuf
    for step in range(4):
        if step == 2:  # a row finished: both caches keep rows 0 and 2
            keep = torch.tensor([0, 2])
            ref.batch_select_indices(keep)
            res.batch_select_indices(keep)
        b = ref.keys.shape[0]
        k, v = torch.randn(b, 2, 1, 4, generator=g), torch.randn(b, 2, 1, 4, generator=g)
        rk, rv = ref.update(k, v)
        ok, ov = res.update(k, v)
        assert torch.equal(ok, rk) and torch.equal(ov, rv)
        assert res.get_seq_length() == ref.get_seq_length() == 6 + step
        if step == 0:
            assert res._kbuf is buffer  # written in place, no copy of the cache
    assert res._kbuf.shape[2] >= 9


def test_packed_lm_head_gives_the_dense_logits(hf: HFModel) -> None:
    import torch

    eng = hf.engine
    assert eng.packed_lm_head  # the embedded model on CPU in float32
    ids = torch.tensor([hf.encode(hf.prompt_text(_m("Name a fruit.")))])
    with torch.inference_mode():
        logits = eng.model(input_ids=ids).logits
        hidden = eng.model.model(input_ids=ids).last_hidden_state
        dense = hidden @ eng.model.model.embed_tokens.weight.t()  # SmolLM2 ties the head to the embeddings
    assert logits.shape == dense.shape
    assert torch.allclose(logits, dense, atol=1e-3, rtol=1e-4)


def _normalised_continuation_probs(hf: HFModel, msgs: list, options: list[str]) -> list[float]:
    """The option distribution computed the slow way: each option's summed token logprobs, softmaxed."""

    async def each() -> list:
        return await asyncio.gather(*[hf.continuation_logprobs(msgs, o) for o in options])

    sums = [sum(t.logprob for t in toks) for toks in asyncio.run(each())]
    m = max(sums)
    ref = [math.exp(s - m) for s in sums]
    return [r / sum(ref) for r in ref]


def test_score_options_match_continuation_logprobs(hf: HFModel) -> None:
    msgs = _m("Is it polite to arrive late to a dinner party? Answer Yes or No.")
    options = ["Yes", "No", "It depends on the culture"]
    probs = asyncio.run(hf.score_options(msgs, options))
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-9) and all(0 < x < 1 for x in probs)
    ref = _normalised_continuation_probs(hf, msgs, options)
    assert max(abs(a - b) for a, b in zip(probs, ref, strict=True)) < 1e-4
    toks = asyncio.run(hf.continuation_logprobs(msgs, "It depends", top_logprobs=3))
    assert "".join(t.token for t in toks) == "It depends"
    assert all(len(t.top) == 3 and t.top[0][1] >= t.logprob - 1e-5 for t in toks)


def test_generate_with_logprobs_matches_chat(hf: HFModel) -> None:
    msgs = _m("Say hello.")
    p = GenParams(max_tokens=8)
    text, toks = asyncio.run(hf.generate_with_logprobs(msgs, p, top_logprobs=2))
    assert text == asyncio.run(hf.chat(msgs, p)).text
    assert toks and all(t.logprob <= 0 and len(t.top) == 2 for t in toks)
    # greedy: every chosen token is the most likely one under the unmodified distribution
    assert all(abs(t.top[0][1] - t.logprob) < 1e-5 for t in toks)
    # the same numbers as scoring the generated text as a continuation
    cont = asyncio.run(hf.continuation_logprobs(msgs, text))
    if [t.token for t in cont] == [t.token for t in toks[: len(cont)]]:
        assert all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(cont, toks, strict=False))


def test_prefix_cache_reuses_a_shared_system_prompt(hf: HFModel) -> None:
    persona = "You are answering a survey as a 40-year-old teacher from Osaka. " * 6
    before = hf.engine.prefix_hits
    asyncio.run(hf.score_options(_m("Is family important?", system=persona), ["Yes", "No"]))
    mid = hf.engine.prefix_hits
    asyncio.run(hf.score_options(_m("Is work important?", system=persona), ["Yes", "No"]))
    reused = hf.engine.prefix_hits - mid
    assert reused >= len(hf.encode(persona)) and mid >= before


def test_concurrent_scoring_is_batched_and_equals_one_at_a_time(hf: HFModel) -> None:
    """Many score_options requests (2 personas x 3 questions, 1- and 2-token options) in one go: same numbers
    as each request alone on an empty cache, with each persona's shared prefix computed once."""
    personas = [
        "You are answering a survey as a 52-year-old farmer from the Nile delta who cares about family. " * 2,
        "You are answering a survey as a 23-year-old student in Lima who loves football and music. " * 2,
    ]
    questions = ["Is family important?", "Is religion important?", "How much do you trust neighbours?"]
    reqs = [_m(f"{q} Answer with a number.", system=p) for p in personas for q in questions]
    options = [str(k) for k in range(1, 11)]  # "10" is two tokens
    eng = hf.engine
    alone = []
    for m in reqs:
        eng._prefix_cache.clear()
        alone.append(asyncio.run(hf.score_options(m, options)))
    eng._prefix_cache.clear()
    hits0 = eng.prefix_hits

    async def together() -> list:
        return await asyncio.gather(*[hf.score_options(m, options) for m in reqs])

    batched = asyncio.run(together())
    assert max(abs(a - b) for x, y in zip(alone, batched, strict=True) for a, b in zip(x, y, strict=True)) < 1e-4
    shared = min(len(hf.encode(p)) for p in personas)
    assert eng.prefix_hits - hits0 >= len(reqs) * shared  # each prompt reused its persona's shared prefix


def test_options_with_a_shared_head_match_continuation_logprobs(hf: HFModel) -> None:
    """Options " 1" ... " 12" all start with a space token: computed once, the numbers must not change."""
    msgs = _m("Pick a number between 1 and 12.")
    options = [f" {k}" for k in range(1, 13)]
    assert len({tuple(hf.encode(o)[:1]) for o in options}) == 1  # the shared head this test is about
    probs = asyncio.run(hf.score_options(msgs, options))
    ref = _normalised_continuation_probs(hf, msgs, options)
    assert max(abs(a - b) for a, b in zip(probs, ref, strict=True)) < 1e-4


@pytest.mark.slow
def test_lora_adapter_loads_and_changes_outputs(hf: HFModel, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from clca.llm import embedded_model_dir

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir()), dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 4

    lora = HFModel.from_spec(f"embedded+lora:{tmp_path / 'adapter'}")
    try:
        assert lora.model_id.startswith("embedded:SmolLM2-135M-Instruct+lora:") and lora.model_id != hf.model_id
        msgs = _m("Is it polite to bow when greeting?")
        a = asyncio.run(hf.continuation_logprobs(msgs, "Yes, it is"))
        b = asyncio.run(lora.continuation_logprobs(msgs, "Yes, it is"))
        assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)) > 1e-3
        assert asyncio.run(lora.chat(msgs, GenParams(max_tokens=6))).texts[0] is not None
    finally:
        asyncio.run(lora.aclose())


def test_multi_token_options_equal_a_plain_forward_of_prompt_and_option(hf: HFModel) -> None:
    """Options of 1-4 tokens scored together (one row per prompt, each option masked from the others) give
    the log-probabilities a plain transformers forward of prompt + option gives, token by token."""
    import torch
    from transformers import AutoModelForCausalLM

    msgs = _m("How do you greet an elder you meet for the first time?")
    options = [" bow", " shake hands", " non-verbal communication", " say good morning politely"]
    lens = [len(hf.encode(o)) for o in options]
    assert len(set(lens)) >= 3 and max(lens) >= 4  # options of different lengths share one row

    async def each() -> list:
        return list(await asyncio.gather(*[hf.continuation_logprobs(msgs, o) for o in options]))

    scored = asyncio.run(each())  # concurrent: one scoring batch, option tails packed per prompt
    plain = AutoModelForCausalLM.from_pretrained(str(hf._resolved_dir()), dtype=torch.float32)
    prompt = hf.encode(hf.prompt_text(msgs))
    for opt, toks in zip(options, scored, strict=True):
        ids = prompt + hf.encode(opt)
        with torch.inference_mode():
            lp = torch.log_softmax(plain(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        ref = [float(lp[len(prompt) - 1 + t, ids[len(prompt) + t]]) for t in range(len(ids) - len(prompt))]
        assert len(toks) == len(ref), opt
        assert max(abs(a.logprob - b) for a, b in zip(toks, ref, strict=True)) < 1e-4, opt
    probs = asyncio.run(hf.score_options(msgs, options))
    assert max(abs(a - b) for a, b in zip(probs, _normalised_continuation_probs(hf, msgs, options), strict=True)) < 1e-4
