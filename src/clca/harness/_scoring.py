"""Per-document answer distributions and the culture-level metrics over them (one owner for both harnesses).

A document is one prompt of `clca eval`: one persona (or the shared persona of the styles without
persona details), one item, one option order. Its answer distribution is over the item's codes in scale
order plus a trailing safeguarded share, exactly as `clca.wvs.Answer.with_safeguarded()`; the culture
level follows `clca.wvs.compute_metrics`: per item the mean distribution over documents against the
survey shares (`item_metric_values`), then the mean over items; individual accuracy per item is the mean
hit over the real answers of the personas, then the mean over items.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..llm import normalise
from ..wvs import Item, item_metric_values, parse_answer

METRICS = ("kl", "jsd", "similarity", "w1", "majority", "accuracy", "safeguarded")


class DocResult(BaseModel):
    """What the metrics need of one scored document."""

    item: str
    kind: str
    codes: list[int]
    survey: list[float]
    epsilon: float
    real_answers: list[int]
    dist: list[float]  # codes order + trailing safeguarded share
    mode: str  # logprobs | generate


def _item(doc: dict[str, Any]) -> Item:
    options = {int(k): v for k, v in doc["options"].items()}
    return Item(id=doc["item"], theme=doc.get("theme", ""), text=doc.get("user", ""), options=options, kind=doc["kind"])


def distribution_from_logliks(doc: dict[str, Any], logliks: Sequence[float]) -> list[float]:
    """Softmax over the shown options' log-likelihoods (option k = the k-th code of `doc["order"]`)."""
    order = doc["order"]
    if len(logliks) != len(order):
        raise ValueError(f"{doc['id']}: {len(logliks)} log-likelihoods for {len(order)} options")
    by_code = dict(zip(order, normalise(logliks), strict=True))
    return [by_code[c] for c in doc["codes"]] + [0.0]


def distribution_from_replies(doc: dict[str, Any], replies: Sequence[str]) -> list[float]:
    """Shares of the parsed replies (clca's answer parser; unparseable or refusals -> safeguarded)."""
    if not replies:
        raise ValueError(f"{doc['id']}: no replies")
    item = _item(doc)
    counts = dict.fromkeys(doc["codes"], 0)
    bad = 0
    for r in replies:
        code = parse_answer(r, item, doc["order"])
        if code is None:
            bad += 1
        else:
            counts[code] += 1
    n = len(replies)
    return [counts[c] / n for c in doc["codes"]] + [bad / n]


def doc_result(doc: dict[str, Any], dist: list[float], mode: str) -> DocResult:
    return DocResult(
        item=doc["item"], kind=doc["kind"], codes=doc["codes"], survey=doc["survey"], epsilon=doc["epsilon"],
        real_answers=doc["real_answers"], dist=dist, mode=mode,
    )  # fmt: skip


def per_item(results: Iterable[DocResult]) -> dict[str, dict[str, float]]:
    """metric -> item -> value, as `clca.wvs.compute_metrics` stores it."""
    by_item: dict[str, list[DocResult]] = defaultdict(list)
    for r in results:
        by_item[r.item].append(r)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for iid, docs in sorted(by_item.items()):
        first = docs[0]
        p = list(np.mean([d.dist for d in docs], axis=0))
        for metric, value in item_metric_values(p, first.survey, first.kind, first.epsilon).items():
            out[metric][iid] = value
        hits: list[float] = []
        for d in docs:
            for real in d.real_answers:
                if d.mode == "logprobs":
                    hits.append(1.0 if d.codes[int(np.argmax(d.dist[:-1]))] == real else 0.0)
                else:
                    hits.append(d.dist[d.codes.index(real)])
        if hits:
            out["accuracy"][iid] = float(np.mean(hits))
    return dict(out)


def culture_metrics(results: Iterable[DocResult]) -> dict[str, float]:
    """Mean over items of each metric (NaN when no item has it, e.g. accuracy without real answers)."""
    vals = per_item(results)
    return {m: (float(np.mean(list(vals[m].values()))) if vals.get(m) else math.nan) for m in METRICS}
