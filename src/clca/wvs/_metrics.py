"""Distances between a model's answer distribution and a survey's, and bootstrap intervals.

Conventions (see docs/wvs-evaluation.md):
- Distributions are lists of shares over the same codes; the model's may carry one extra trailing
  "safeguarded" share (refusals / unparseable answers), for which the survey's share is 0.
- KL is D_KL(P_model || P_survey) in nats. Survey shares that are 0 are replaced by `epsilon`, then the
  survey distribution is renormalised (default epsilon 1e-3); model zeros contribute 0.
- Jensen-Shannon distance uses log base 2, so it lies in [0, 1]; similarity = 1 - distance.
- Wasserstein-1 is computed over the scale's options only (safeguarded mass removed and the rest
  renormalised; a model with no mass on options scores the maximum, 1) and divided by (K - 1).
- Every metric refuses shares that are NaN, infinite or negative (`InvalidShares`, naming the share):
  such a distribution is a bug upstream, and NaN would otherwise compare as a perfect match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DataError


class InvalidShares(DataError, ValueError):
    """A distribution given to a metric holds a NaN, infinite or negative share, or is empty."""


def check_shares(shares: Sequence[float], what: str) -> np.ndarray:
    """The shares as a float array; NaN, inf, negative values, booleans and empty lists are refused."""
    if isinstance(shares, (str, bytes)) or any(isinstance(x, (bool, np.bool_)) for x in shares):
        raise InvalidShares(f"{what} distribution {list(shares)!r}: shares must be numbers, not booleans or text")
    try:
        a = np.asarray(shares, dtype=float)
    except (TypeError, ValueError):
        raise InvalidShares(f"{what} distribution {shares!r}: shares must be numbers") from None
    if a.ndim != 1 or len(a) == 0:
        raise InvalidShares(f"{what} distribution {shares!r}: expected a non-empty list of shares")
    for i, x in enumerate(a):
        if not math.isfinite(x) or x < 0:
            raise InvalidShares(
                f"{what} distribution: share {i} is {x!r}; shares must be finite and non-negative ({a.tolist()})"
            )
    return a


def _as_pair(p: Sequence[float], q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pa = check_shares(p, "model")
    qa = check_shares(q, "survey")
    if len(qa) == len(pa) - 1:  # model has a trailing safeguarded share
        qa = np.append(qa, 0.0)
    if pa.shape != qa.shape:
        raise InvalidShares(f"distributions of different length: model {len(pa)} vs survey {len(qa)}")
    sp, sq = pa.sum(), qa.sum()
    if sp <= 0 or sq <= 0:
        raise InvalidShares(f"empty {'model' if sp <= 0 else 'survey'} distribution (all shares 0)")
    return pa / sp, qa / sq


def kl_divergence(p_model: Sequence[float], q_survey: Sequence[float], epsilon: float = 1e-3) -> float:
    """D_KL(P_model || P_survey) in nats; survey zeros -> epsilon, then renormalised."""
    p, q = _as_pair(p_model, q_survey)
    if epsilon > 0:
        q = np.where(q == 0, epsilon, q)
        q = q / q.sum()
    mask = p > 0
    if (q[mask] == 0).any():
        return math.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def js_distance(p_model: Sequence[float], q_survey: Sequence[float]) -> float:
    """Jensen-Shannon distance, base 2, in [0, 1]."""
    p, q = _as_pair(p_model, q_survey)
    m = 0.5 * (p + q)

    def _kl2(a: np.ndarray) -> float:
        k = a > 0
        return float(np.sum(a[k] * np.log2(a[k] / m[k])))

    div = 0.5 * _kl2(p) + 0.5 * _kl2(q)
    return float(math.sqrt(min(1.0, max(0.0, div))))


def js_similarity(p_model: Sequence[float], q_survey: Sequence[float]) -> float:
    """1 - Jensen-Shannon distance (GlobalOpinionQA)."""
    return 1.0 - js_distance(p_model, q_survey)


def wasserstein_ordinal(p_model: Sequence[float], q_survey: Sequence[float]) -> float:
    """Wasserstein-1 between two distributions on an ordinal scale of K points, divided by K - 1 (in [0, 1])."""
    q = check_shares(q_survey, "survey")
    p = check_shares(p_model, "model")[: len(q)]  # drop a trailing safeguarded share
    if q.sum() <= 0:
        raise InvalidShares("empty survey distribution (all shares 0)")
    if p.sum() <= 0:
        return 1.0
    p, q = p / p.sum(), q / q.sum()
    k = len(q)
    if k < 2:
        return 0.0
    return float(np.abs(np.cumsum(p) - np.cumsum(q))[:-1].sum() / (k - 1))


def majority_match(p_model: Sequence[float], q_survey: Sequence[float]) -> float:
    """1.0 when the model's most likely option is the survey's most common one (safeguarded never matches)."""
    q = check_shares(q_survey, "survey")
    p = check_shares(p_model, "model")
    if p.sum() <= 0 or q.sum() <= 0:
        raise InvalidShares(f"empty {'model' if p.sum() <= 0 else 'survey'} distribution (all shares 0)")
    top = int(np.argmax(p))
    if top >= len(q):
        return 0.0
    return 1.0 if q[top] == q.max() else 0.0


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval over the values (e.g. one per question). Seeded."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if len(v) == 1 or resamples <= 0:
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    means = v[idx].mean(axis=1)
    a = (1 - level) / 2
    return (mean, float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))
