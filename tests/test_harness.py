"""clca's WVS evaluation as lm-evaluation-harness and inspect_ai tasks: export, scoring, and agreement with
`clca eval` on the real embedded model (lm-eval's own `hf` model; inspect and lm-eval's
`local-chat-completions` client against `clca serve` on loopback)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from clca.harness import DocResult, culture_metrics, export_tasks
from clca.harness._scoring import distribution_from_logliks, distribution_from_replies, doc_result, per_item
from clca.llm import MockLLM
from clca.records import METRIC, SURVEY_ANSWER
from clca.store import RunStore
from clca.wvs import Answer, EvalConfig, evaluate

ITEMS = ["Q1", "Q8", "Q27"]  # ordinal 4-point, categorical (child quality), ordinal agree scale


def _cfg(shared: Path | None, **kw) -> EvalConfig:  # noqa: ANN003
    base = dict(
        cultures=["Egypt"], styles=["persona", "cultural"], personas=2, items=ITEMS, bootstrap=0, progress=False
    )
    if shared is not None:
        base["survey"] = [str(shared / "cultural-trends" / "eg_wvs_wave7_v7_n303.csv")]
    base.update(kw)
    return EvalConfig(**base)


def _docs(out: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (out / "data" / f"{task}.jsonl").read_text().splitlines()]


def _stored(run: Path, alias: str, style: str = "persona", culture: str = "EGY") -> tuple[dict, dict]:
    with RunStore(run) as store:
        answers = {r.key: Answer.model_validate(r.data) for r in store.iter(SURVEY_ANSWER, prefix=f"{alias}/{style}/")}
        metrics = {
            r.key.rsplit("/", 1)[1]: r.data for r in store.iter(METRIC, prefix=f"{alias}/{style}/{culture}/base/")
        }
    return answers, metrics


def test_export_writes_every_prompt_and_lm_eval_finds_the_tasks(tmp_path: Path, shared_data: Path) -> None:
    cfg = _cfg(shared_data)
    summary = export_tasks(cfg, tmp_path / "tasks")
    assert summary.tasks == {"clca_wvs_egy_persona": 2 * len(ITEMS), "clca_wvs_egy_cultural": len(ITEMS)}
    docs = _docs(tmp_path / "tasks", "clca_wvs_egy_persona")
    assert {d["item"] for d in docs} == set(ITEMS)
    assert all(d["system"].startswith("Imagine") and d["choices"][0] == "1" for d in docs)
    assert all(len(d["survey"]) == len(d["codes"]) for d in docs)
    # the cultural style's single answer is scored against every persona's real answer
    shared = _docs(tmp_path / "tasks", "clca_wvs_egy_cultural")
    assert all(len(d["real_answers"]) >= 1 for d in shared)
    lm_eval = pytest.importorskip("lm_eval.tasks")
    tm = lm_eval.TaskManager(include_path=str(tmp_path / "tasks" / "lm_eval"))
    assert {"clca_wvs_egy_persona", "clca_wvs_egy_cultural_gen", "clca_wvs"} <= set(tm.all_tasks)


def test_export_refuses_a_file_as_output(tmp_path: Path) -> None:
    from clca.errors import DataError

    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        export_tasks(_cfg(None, personas=1), tmp_path / "f")


def test_harness_scoring_equals_clca_metrics(tmp_path: Path, shared_data: Path) -> None:
    """The harness aggregation over clca's own answers reproduces clca's stored metrics exactly (logprobs and
    generate mode), so any difference between a harness and clca comes from the model, not the scoring."""

    def probs(_m, options):  # noqa: ANN001, ANN202
        return [float(i + 1) for i in range(len(options))]

    replies = iter(["2", "I would say 1", "Strongly agree (1)", "no idea", "3"] * 1000)
    for mode, llm in (("logprobs", MockLLM(option_probs=probs)), ("generate", MockLLM(lambda _m, _p: next(replies)))):
        cfg = _cfg(shared_data, mode=mode, samples=5)
        export_tasks(cfg, tmp_path / mode)
        with RunStore(tmp_path / f"run-{mode}") as store:
            asyncio.run(evaluate(store, llm, "harness", cfg))
        answers, metrics = _stored(tmp_path / f"run-{mode}", "harness")
        docs = _docs(tmp_path / mode, "clca_wvs_egy_persona")
        assert {d["id"] for d in docs} == set(answers)
        results = [doc_result(d, answers[d["id"]].with_safeguarded(), mode) for d in docs]
        ours = culture_metrics(results)
        for m in ("kl", "jsd", "similarity", "w1", "majority", "accuracy", "safeguarded"):
            assert ours[m] == pytest.approx(metrics[m]["mean"], rel=1e-12, abs=1e-12), (mode, m)
        assert per_item(results)["kl"] == pytest.approx(metrics["kl"]["per_item"], rel=1e-12)


def test_distributions_from_logliks_and_replies() -> None:
    doc = {"id": "d", "item": "Q1", "kind": "ordinal", "codes": [1, 2, 3], "order": [3, 1, 2],
           "options": {"1": "Yes", "2": "Maybe", "3": "No"}, "user": "q"}  # fmt: skip
    d = distribution_from_logliks(doc, [math.log(0.5), math.log(0.3), math.log(0.2)])
    assert d == pytest.approx([0.3, 0.2, 0.5, 0.0])  # shown first = code 3
    r = distribution_from_replies(doc, ["1", "Maybe", "I cannot answer", "3"])
    assert r == pytest.approx([0.0, 0.5, 0.25, 0.25])  # "1" -> code 3, "Maybe" and "3" -> code 2
    with pytest.raises(ValueError, match="2 log-likelihoods for 3 options"):
        distribution_from_logliks(doc, [0.0, 0.0])
    res = DocResult(item="Q1", kind="ordinal", codes=[1, 2], survey=[1.0, 0.0], epsilon=1e-3, real_answers=[],
                    dist=[1.0, 0.0, 0.0], mode="logprobs")  # fmt: skip
    assert math.isnan(culture_metrics([res])["accuracy"])


@pytest.mark.slow
def test_lm_eval_task_agrees_with_clca_eval_logprobs(tmp_path: Path, shared_data: Path, embedded_llm) -> None:  # noqa: ANN001
    """lm-eval's own `hf` model on the embedded model's weights vs `clca eval --mode logprobs`."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from clca.llm._embedded import embedded_model_dir

    cfg = _cfg(shared_data, styles=["persona"])
    export_tasks(cfg, tmp_path / "tasks")
    t0 = time.perf_counter()
    with RunStore(tmp_path / "run") as store:
        asyncio.run(evaluate(store, embedded_llm, "harness", cfg))
    t_clca = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={embedded_model_dir()},dtype=float32", tasks=["clca_wvs_egy_persona"],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks" / "lm_eval")), apply_chat_template=True,
        log_samples=True, batch_size=8, device="cpu",
    )  # fmt: skip
    t_lm = time.perf_counter() - t0
    print(f"\nwall time: clca eval {t_clca:.1f}s, lm-eval {t_lm:.1f}s (model load included)")
    answers, metrics = _stored(tmp_path / "run", "harness")
    samples = res["samples"]["clca_wvs_egy_persona"]
    assert len(samples) == len(answers) == 2 * len(ITEMS)
    worst = 0.0
    for s in samples:
        doc = s["doc"]
        dist = distribution_from_logliks(doc, [r[0] for r in s["filtered_resps"]])
        ref = answers[doc["id"]].with_safeguarded()
        worst = max(worst, max(abs(a - b) for a, b in zip(dist, ref, strict=True)))
    print(f"max |p_lm-eval - p_clca| per option: {worst:.2e}")
    assert worst < 1e-4
    got = res["results"]["clca_wvs_egy_persona"]
    for m in ("kl", "jsd", "w1", "accuracy"):
        assert got[f"{m},none"] == pytest.approx(metrics[m]["mean"], rel=1e-3), m
    rel = abs(got["kl,none"] - metrics["kl"]["mean"]) / metrics["kl"]["mean"]
    print(f"culture-level KL: lm-eval {got['kl,none']:.8f} vs clca {metrics['kl']['mean']:.8f} (rel {rel:.1e})")


@pytest.mark.slow
def test_inspect_task_through_clca_serve_reproduces_clca_generate(
    tmp_path: Path, shared_data: Path, embedded_llm
) -> None:  # noqa: ANN001, E501
    """inspect_ai's OpenAI-compatible provider against `clca serve`: with the documents' seeds the served
    model samples exactly what `clca eval --mode generate` samples, so the metrics agree."""
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval

    from clca.harness.inspect_task import clca_wvs
    from clca.llm.serving import serve_in_thread

    cfg = _cfg(shared_data, styles=["persona"], mode="generate", samples=4, bootstrap=200)
    export_tasks(cfg, tmp_path / "tasks")
    inner = getattr(embedded_llm, "inner", embedded_llm)
    t0 = time.perf_counter()
    with RunStore(tmp_path / "run") as store:
        asyncio.run(evaluate(store, inner, "harness", cfg))
    t_clca = time.perf_counter() - t0
    with serve_in_thread(inner, served_name="embedded") as url:
        t0 = time.perf_counter()
        (log,) = inspect_eval(
            clca_wvs(docs=str(tmp_path / "tasks" / "data" / "clca_wvs_egy_persona.jsonl")),
            model="openai-api/clca/embedded", model_base_url=url, model_args={"api_key": "unused"},
            display="none", log_dir=str(tmp_path / "logs"),
        )  # fmt: skip
        t_inspect = time.perf_counter() - t0
    print(f"\nwall time: clca eval {t_clca:.1f}s, inspect {t_inspect:.1f}s")
    assert log.status == "success", log.error
    answers, metrics = _stored(tmp_path / "run", "harness")
    got = {k: v.value for k, v in log.results.scores[0].metrics.items()}
    for s in log.samples:
        assert s.scores["wvs_answer"].value == pytest.approx(answers[s.id].with_safeguarded()), s.id
    for m in ("kl", "jsd", "similarity", "majority", "accuracy", "safeguarded"):
        assert got[m] == pytest.approx(metrics[m]["mean"], rel=1e-9), m
        assert metrics[m]["lo"] - 1e-12 <= got[m] <= metrics[m]["hi"] + 1e-12, m


@pytest.mark.slow
def test_lm_eval_local_chat_completions_against_clca_serve(tmp_path: Path, shared_data: Path, embedded_llm) -> None:  # noqa: ANN001, E501
    """lm-eval's `local-chat-completions` client runs the generate task against `clca serve` to the end."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from clca.llm.serving import serve_in_thread

    cfg = _cfg(shared_data, styles=["cultural"], samples=2)
    export_tasks(cfg, tmp_path / "tasks")
    inner = getattr(embedded_llm, "inner", embedded_llm)
    with serve_in_thread(inner, served_name="embedded") as url:
        res = lm_eval.simple_evaluate(
            model="local-chat-completions",
            model_args=f"model=embedded,base_url={url}/chat/completions,num_concurrent=2,max_retries=1",
            tasks=["clca_wvs_egy_cultural_gen"],
            task_manager=TaskManager(include_path=str(tmp_path / "tasks" / "lm_eval")),
            apply_chat_template=True, log_samples=True,
        )  # fmt: skip
    got = res["results"]["clca_wvs_egy_cultural_gen"]
    samples = res["samples"]["clca_wvs_egy_cultural_gen"]
    assert len(samples) == len(ITEMS)
    # every sampled reply reached the scorer (the shared cultural prompt gets samples x personas of them)
    assert all(len(s["filtered_resps"][0]) == s["doc"]["samples"] == 4 for s in samples)
    assert 0.0 <= got["similarity,all"] <= 1.0 and math.isfinite(got["kl,all"])


@pytest.mark.slow
def test_lm_eval_local_completions_against_clca_serve(tmp_path: Path, shared_data: Path, embedded_llm) -> None:  # noqa: ANN001, E501
    """lm-eval's `local-completions` client (echo + logprobs on /v1/completions) scores the log-likelihood
    task against `clca serve`; its distributions equal `clca eval --mode logprobs`."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from clca.llm._embedded import embedded_model_dir
    from clca.llm.serving import serve_in_thread

    cfg = _cfg(shared_data, styles=["cultural"])
    export_tasks(cfg, tmp_path / "tasks")
    inner = getattr(embedded_llm, "inner", embedded_llm)
    with RunStore(tmp_path / "run") as store:
        asyncio.run(evaluate(store, inner, "harness", cfg))
    answers, _ = _stored(tmp_path / "run", "harness", style="cultural")
    with serve_in_thread(inner, served_name="embedded") as url:
        res = lm_eval.simple_evaluate(
            model="local-completions",
            model_args=(
                f"model=embedded,base_url={url}/completions,tokenizer_backend=huggingface,"
                f"tokenizer={embedded_model_dir()},tokenized_requests=True,num_concurrent=1,max_retries=1"
            ),
            tasks=["clca_wvs_egy_cultural"], task_manager=TaskManager(include_path=str(tmp_path / "tasks" / "lm_eval")),
            apply_chat_template=True, log_samples=True,
        )  # fmt: skip
    samples = res["samples"]["clca_wvs_egy_cultural"]
    assert len(samples) == len(ITEMS)
    for s in samples:
        dist = distribution_from_logliks(s["doc"], [r[0] for r in s["filtered_resps"]])
        assert dist == pytest.approx(answers[s["doc"]["id"]].with_safeguarded(), abs=1e-4)


def test_completions_endpoint_request_shapes(embedded_llm) -> None:  # noqa: ANN001
    """/v1/completions: echo + logprobs over a text prompt and a token-id batch, OpenAI-style 400s."""
    import httpx

    from clca.llm.serving import serve_in_thread

    inner = getattr(embedded_llm, "inner", embedded_llm)
    assert inner.engine is not None  # load the model before the first request (its own time, not the request's)
    with serve_in_thread(inner, served_name="m") as url:
        body = {"prompt": "The capital of France is", "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0}
        r = httpx.post(f"{url}/completions", json=body, timeout=600)
        assert r.status_code == 200, r.text
        (choice,) = r.json()["choices"]
        lp = choice["logprobs"]
        n = len(inner.encode("The capital of France is"))
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == n + 1
        assert lp["token_logprobs"][0] is None and all(x <= 0 for x in lp["token_logprobs"][1:])
        assert choice["text"].startswith("The capital of France is")
        # the scored prompt tokens agree with the backend's own continuation scoring
        ids = inner.encode("The capital of France is")
        (ref,) = asyncio.run(inner.score_ids(ids[:1], [ids[1:]]))
        assert lp["token_logprobs"][1:n] == pytest.approx([t.logprob for t in ref], abs=1e-5)
        batch = httpx.post(f"{url}/completions", json={"prompt": [ids, ids[:3]], "max_tokens": 2, "n": 2,
                                                       "temperature": 0}, timeout=600)  # fmt: skip
        assert batch.status_code == 200 and [c["index"] for c in batch.json()["choices"]] == [0, 1, 2, 3]
        for body, field in (({"prompt": "x", "stream": True}, "stream"), ({"prompt": "x", "suffix": "y"}, "suffix"),
                            ({"prompt": "x", "tools": []}, "tools"), ({"prompt": []}, "prompt")):  # fmt: skip
            bad = httpx.post(f"{url}/completions", json=body, timeout=600)
            assert bad.status_code == 400 and field in bad.json()["error"]["message"], (body, bad.text)
