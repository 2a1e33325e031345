"""lm-evaluation-harness hooks of the clca WVS tasks (`process_results` and the culture-level aggregations).

Each document's result carries its answer distribution; the aggregation functions compute clca's
culture-level metrics over all documents of the task (one culture, one prompt style).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._scoring import (
    METRICS,
    DocResult,
    culture_metrics,
    distribution_from_logliks,
    distribution_from_replies,
    doc_result,
)

__all__ = ["process_results", "process_results_generate", *[f"agg_{m}" for m in METRICS]]


def _loglik(r: Any) -> float:
    return float(r[0]) if isinstance(r, (tuple, list)) else float(r)


def process_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """multiple_choice: one log-likelihood per option."""
    res = doc_result(doc, distribution_from_logliks(doc, [_loglik(r) for r in results]), "logprobs")
    return dict.fromkeys(METRICS, res.model_dump())


def process_results_generate(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """generate_until with repeats: the sampled replies of one prompt."""
    replies: list[str] = []
    for r in results:
        replies.extend(r if isinstance(r, (list, tuple)) else [r])
    res = doc_result(doc, distribution_from_replies(doc, replies), "generate")
    return dict.fromkeys(METRICS, res.model_dump())


def _agg(metric: str):  # noqa: ANN202
    def agg(items: Sequence[dict[str, Any]]) -> float:
        return culture_metrics(DocResult.model_validate(i) for i in items)[metric]

    agg.__name__ = f"agg_{metric}"
    return agg


agg_kl = _agg("kl")
agg_jsd = _agg("jsd")
agg_similarity = _agg("similarity")
agg_w1 = _agg("w1")
agg_majority = _agg("majority")
agg_accuracy = _agg("accuracy")
agg_safeguarded = _agg("safeguarded")
