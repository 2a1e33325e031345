"""inspect_ai task: clca's WVS evaluation in generate mode (sampled answers), with clca's metrics.

    clca harness export --culture Egypt --style persona --out wvs-tasks
    inspect eval $(clca harness path inspect) -T docs=wvs-tasks/data/clca_wvs_egy_persona.jsonl \\
        --model openai-api/clca/embedded --model-base-url http://127.0.0.1:8000/v1   # CLCA_API_KEY=anything

Each document is one prompt of `clca eval` (system prompt + question, same personas and wording). The
model is asked for `samples` replies per prompt (`num_choices`; a provider that ignores it gives one),
clca's answer parser turns them into an answer distribution, and the metrics are clca's culture-level
metrics over the task's documents (KL, JSD, 1-JSD, W1, majority match, individual accuracy, safeguarded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from clca.harness._scoring import DocResult, culture_metrics, distribution_from_replies, doc_result


def _results(scores: list[SampleScore]) -> list[DocResult]:
    out = []
    for s in scores:
        doc = s.sample_metadata or {}
        out.append(doc_result(doc, list(s.score.value), "generate"))  # type: ignore[arg-type]
    return out


def _culture_metric(name: str) -> Metric:
    def compute(scores: list[SampleScore]) -> float:
        return culture_metrics(_results(scores))[name]

    return compute


@metric
def kl() -> Metric:
    """Mean over items of KL(model || survey)."""
    return _culture_metric("kl")


@metric
def jsd() -> Metric:
    """Mean over items of the Jensen-Shannon distance."""
    return _culture_metric("jsd")


@metric
def similarity() -> Metric:
    """Mean over items of 1 - Jensen-Shannon distance."""
    return _culture_metric("similarity")


@metric
def w1() -> Metric:
    """Mean over ordinal items of the normalised Wasserstein-1 distance."""
    return _culture_metric("w1")


@metric
def majority() -> Metric:
    """Share of items where the model's most likely option is the survey's most common one."""
    return _culture_metric("majority")


@metric
def accuracy() -> Metric:
    """Individual accuracy against each persona's real answer (needs real respondents)."""
    return _culture_metric("accuracy")


@metric
def safeguarded() -> Metric:
    """Mean share of refusals and unparseable replies."""
    return _culture_metric("safeguarded")


@scorer(metrics=[kl(), jsd(), similarity(), w1(), majority(), accuracy(), safeguarded()])
def wvs_answer() -> Scorer:
    """The answer distribution of one prompt (codes in scale order + safeguarded) from its sampled replies."""

    async def score(state: TaskState, target: Target) -> Score:
        replies = [c.message.text for c in state.output.choices] or [state.output.completion]
        dist = distribution_from_replies(state.metadata, replies)
        return Score(value=dist, answer=" | ".join(r.strip() for r in replies[:5]))

    return score


@solver
def sample_answers(samples: int | None = None, temperature: float | None = None) -> Solver:
    """Ask each prompt for its replies with the document's own seed, reply length and sample count, as
    `clca eval --mode generate` does (so a deterministic server reproduces clca's samples)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        doc = state.metadata
        return await generate(
            state,
            num_choices=samples or int(doc.get("samples", 20)),
            temperature=temperature if temperature is not None else float(doc.get("temperature", 1.0)),
            max_tokens=int(doc.get("max_tokens", 8)),
            seed=int(doc["seed"]),
        )

    return solve


def _sample(doc: dict[str, Any]) -> Sample:
    msgs: list[Any] = [ChatMessageUser(content=doc["user"])]
    if doc["system"]:
        msgs.insert(0, ChatMessageSystem(content=doc["system"]))
    return Sample(id=doc["id"], input=msgs, target="", metadata=doc)


@task
def clca_wvs(docs: str, samples: int | None = None, temperature: float | None = None) -> Task:
    """One culture and prompt style: the documents `clca harness export` wrote (data/<task>.jsonl).
    `samples` / `temperature` override the exported ones (clca eval's --samples / --temperature)."""
    rows = [json.loads(line) for line in Path(docs).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{docs}: no documents")
    return Task(
        dataset=MemoryDataset([_sample(d) for d in rows], name=Path(docs).stem),
        solver=sample_answers(samples, temperature),
        scorer=wvs_answer(),
    )
