"""Option scoring shared by the backends: summed log-probabilities -> a distribution over the options."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...errors import BackendError


def normalise(logps: Sequence[float]) -> list[float]:
    """Softmax of summed log-probabilities (float64 arithmetic); the result sums to 1.

    Raises BackendError when every option has probability 0 (all log-probabilities -inf)."""
    m = max(logps)
    if m == -math.inf:
        raise BackendError("every option has probability 0")
    ex = [math.exp(x - m) for x in logps]
    total = sum(ex)
    return [e / total for e in ex]
