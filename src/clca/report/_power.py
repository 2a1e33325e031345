"""The smallest paired difference a comparison could have detected (minimum detectable effect, MDE).

The test assumed is the two-sided one-sample t-test on the paired differences (the paired t-test),
at alpha 0.05 with power 0.8: under a true mean difference `delta`, the t statistic of n differences with
standard deviation `sd` follows a noncentral t distribution with n - 1 degrees of freedom and noncentrality
`delta / sd * sqrt(n)`. The MDE is the `delta` at which the test rejects with probability 0.8 (both tails
counted). It is computed with scipy's noncentral t (`scipy.stats.nct`) and a root finder, and agrees with
`statsmodels.stats.power.TTestPower` (tests/test_compare_specificity.py).

The reported p-values are Wilcoxon signed-rank tests; the MDE of the t-test is the usual planning figure
for them (the Wilcoxon test's efficiency relative to the t-test is about 0.95 for normal differences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ALPHA = 0.05
POWER = 0.8
ASSUMED_TEST = (
    "detectable: the smallest mean paired difference a two-sided paired t-test (one-sample t on the "
    f"differences; noncentral t) would find with power {POWER:g} at alpha {ALPHA:g}, from the observed "
    "standard deviation of the paired differences and their number"
)


def t_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test at standardized effect `effect` (mean / sd) with n units."""
    from scipy.stats import nct, t

    df = n - 1
    crit = float(t.isf(alpha / 2, df))
    nc = effect * math.sqrt(n)
    upper = float(nct.sf(crit, df, nc))
    lower = float(nct.cdf(-crit, df, nc))  # scipy returns NaN where this tail underflows (large nc)
    return upper + (lower if math.isfinite(lower) else 0.0)


def detectable_effect_size(n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The standardized effect (mean / sd) the test detects with `power`; None below 2 units."""
    from scipy.optimize import brentq

    if n < 2:
        return None
    hi = 1.0
    while t_power(hi, n, alpha) < power:
        hi *= 2.0
        if hi > 1e6:
            return None
    return float(brentq(lambda d: t_power(d, n, alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-12))


def minimum_detectable(
    diffs: Sequence[float], alpha: float = ALPHA, power: float = POWER
) -> tuple[float, float | None]:
    """(standard deviation of the paired differences, the MDE in the metric's units); MDE None below 2 units."""
    d = np.asarray(list(diffs), dtype=float)
    if d.size < 2:
        return (math.nan, None)
    sd = float(d.std(ddof=1))
    es = detectable_effect_size(int(d.size), alpha, power)
    return (sd, None if es is None else es * sd)
