"""Each WVS metric against hand-computed values (zero shares and smoothing included)."""

from __future__ import annotations

import math

import pytest

from clca.wvs import (
    bootstrap_ci,
    js_distance,
    js_similarity,
    kl_divergence,
    majority_match,
    wasserstein_ordinal,
)


def test_kl_plain() -> None:
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    assert kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl_divergence([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0)


def test_kl_zero_survey_share_is_smoothed_then_renormalised() -> None:
    # survey [1, 0], eps 0.01 -> [1, 0.01] / 1.01
    q = [1 / 1.01, 0.01 / 1.01]
    expected = 0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1])
    assert kl_divergence([0.5, 0.5], [1.0, 0.0], epsilon=0.01) == pytest.approx(expected)
    assert expected == pytest.approx(1.619388, abs=1e-6)
    # a larger epsilon gives a smaller divergence; no smoothing gives infinity
    assert kl_divergence([0.5, 0.5], [1.0, 0.0], epsilon=0.1) < kl_divergence([0.5, 0.5], [1.0, 0.0], epsilon=0.01)
    assert math.isinf(kl_divergence([0.5, 0.5], [1.0, 0.0], epsilon=0.0))
    # model zeros contribute nothing (no smoothing of the model side)
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))


def test_kl_with_safeguarded_share() -> None:
    # model [0.5, 0.25] + safeguarded 0.25; survey [0.5, 0.5, 0] -> smoothed [0.5, 0.5, 1e-3] / 1.001
    z = 1.001
    expected = 0.5 * math.log(0.5 / (0.5 / z)) + 0.25 * math.log(0.25 / (0.5 / z)) + 0.25 * math.log(0.25 / (1e-3 / z))
    assert kl_divergence([0.5, 0.25, 0.25], [0.5, 0.5]) == pytest.approx(expected)


def test_js_distance_hand_values() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0, abs=1e-7)
    # m = [0.75, 0.25]; KL2(p||m) = 0.5 log2(2/3) + 0.5; KL2(q||m) = log2(4/3)
    js = 0.5 * (0.5 * math.log2(2 / 3) + 0.5) + 0.5 * math.log2(4 / 3)
    assert js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(math.sqrt(js))
    assert js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.557923, abs=1e-6)
    assert js_similarity([0.5, 0.5], [1.0, 0.0]) == pytest.approx(1 - math.sqrt(js))
    # symmetric, and a safeguarded share is an extra category the survey never has
    assert js_distance([0.2, 0.8], [0.6, 0.4]) == pytest.approx(js_distance([0.6, 0.4], [0.2, 0.8]))
    assert js_distance([0.0, 0.0, 1.0], [0.5, 0.5]) == pytest.approx(1.0)


def test_wasserstein_scaled_by_scale_length() -> None:
    assert wasserstein_ordinal([1, 0, 0, 0], [0, 0, 0, 1]) == pytest.approx(1.0)
    assert wasserstein_ordinal([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(0.5)  # (0.5 + 0.5) / 2
    assert wasserstein_ordinal([0, 1, 0, 0, 0], [0, 0, 1, 0, 0]) == pytest.approx(0.25)  # 1 step of 4
    # safeguarded mass is removed, the rest renormalised: [2/3, 1/3] vs [1/2, 1/2]
    assert wasserstein_ordinal([0.5, 0.25, 0.25], [0.5, 0.5]) == pytest.approx(1 / 6)
    assert wasserstein_ordinal([0.0, 0.0, 1.0], [0.5, 0.5]) == 1.0


def test_majority_match() -> None:
    assert majority_match([0.6, 0.4], [0.7, 0.3]) == 1.0
    assert majority_match([0.4, 0.6], [0.7, 0.3]) == 0.0
    assert majority_match([0.2, 0.1, 0.7], [0.7, 0.3]) == 0.0  # safeguarded is never the survey majority


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    vals = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3]
    m, lo, hi = bootstrap_ci(vals, resamples=500, seed=3)
    assert m == pytest.approx(sum(vals) / len(vals))
    assert lo < m < hi
    assert bootstrap_ci(vals, resamples=500, seed=3) == (m, lo, hi)
    assert bootstrap_ci(vals, resamples=500, seed=4) != (m, lo, hi)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


BAD_SHARES = [
    [math.nan, 0.5, 0.5],
    [math.inf, 0.5, 0.5],
    [-0.2, 0.6, 0.6],
    [True, False, False],
    [],
]


@pytest.mark.parametrize(
    "metric", [kl_divergence, js_distance, js_similarity, wasserstein_ordinal, majority_match], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("bad", BAD_SHARES, ids=["nan", "inf", "negative", "bool", "empty"])
def test_metrics_refuse_invalid_shares(metric, bad) -> None:  # noqa: ANN001
    """NaN used to score KL 0 and 1-JSD 1.0 (a perfect match); negative shares passed W1 and majority."""
    from clca.errors import DataError
    from clca.wvs._metrics import InvalidShares

    good = [0.2, 0.3, 0.5]
    with pytest.raises(InvalidShares, match="model") as e:
        metric(bad, good)
    assert isinstance(e.value, DataError) and isinstance(e.value, ValueError) and "\n" not in str(e.value)
    with pytest.raises(InvalidShares, match="survey"):
        metric(good, bad)
