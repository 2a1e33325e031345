"""Paired statistics for comparing two rows of a comparison (same items, same personas).

- `paired_bootstrap`: the mean of paired differences with a percentile bootstrap interval; the unit of
  resampling is whatever the differences are indexed by (questions for the distribution metrics,
  personas for individual accuracy). Seeded and vectorised; checked against `scipy.stats.bootstrap`.
- `wilcoxon_p`: the two-sided Wilcoxon signed-rank p-value of the paired differences
  (`scipy.stats.wilcoxon`, zero differences dropped); None when there is no non-zero difference.
- `holm`: Holm's step-down adjustment of a family of p-values (here: one family per compared pair and
  metric, across cultures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def paired_differences(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """a[k] - b[k] for every key both have (finite values only), in key order."""
    out: dict[str, float] = {}
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if math.isfinite(x) and math.isfinite(y):
            out[k] = x - y
    return out


def paired_bootstrap(
    diffs: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of the paired differences and its percentile bootstrap interval (units resampled with
    replacement, `resamples` times). One value: the interval is that value; no values: NaNs."""
    d = np.asarray(list(diffs), dtype=float)
    if d.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if d.size == 1 or resamples <= 0:
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    return (mean, float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a)))


def wilcoxon_p(diffs: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; None without a non-zero difference."""
    from scipy.stats import wilcoxon

    d = np.asarray(list(diffs), dtype=float)
    if d.size == 0 or not np.any(d != 0):
        return None
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the input order; None entries stay None and do not count in the family."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    m = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
