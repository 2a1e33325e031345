"""Scores -> graded phrases, in the style of the CLCA paper ("highly hierarchical, ...").

Thresholds (documented in docs/cultures-and-scenarios.md and table-tested):

Hofstede (scores are nominally 0-100; a few countries exceed 100):
    score <  30        "highly <low pole>"
    30 <= score < 45   "moderately <low pole>"
    45 <= score <= 55  "<balanced phrase>"
    55 <  score <= 70  "moderately <high pole>"
    score >  70        "highly <high pole>"

Inglehart-Welzel map (raw map scores, roughly -2.5 .. +3.5; 0 is the divide):
    v <= -1.0          strong <negative pole>
    -1.0 < v <= -0.5   moderate <negative pole>
    -0.5 < v <  0      little/slight <negative pole>
    0 <= v < 0.5       little/slight <positive pole>
    0.5 <= v < 1.0     moderate <positive pole>
    v >= 1.0           strong <positive pole>
"""

from __future__ import annotations

from typing import Literal

HofstedeDim = Literal["pdi", "idv", "mas", "uai", "lto", "ivr"]
IWAxis = Literal["survival_self_expression", "traditional_secular"]

HOFSTEDE_DIMS: tuple[HofstedeDim, ...] = ("pdi", "idv", "mas", "uai", "lto", "ivr")
IW_AXES: tuple[IWAxis, ...] = ("survival_self_expression", "traditional_secular")  # the paper's order

# Band edges for Hofstede scores.
HOFSTEDE_HIGHLY_LOW = 30.0  # below: "highly <low>"
HOFSTEDE_BALANCED_LOW = 45.0  # [30, 45): "moderately <low>"
HOFSTEDE_BALANCED_HIGH = 55.0  # [45, 55]: balanced
HOFSTEDE_HIGHLY_HIGH = 70.0  # (55, 70]: "moderately <high>"; above: "highly <high>"

# Band edges for Inglehart-Welzel map scores (absolute value).
IW_MODERATE = 0.5
IW_STRONG = 1.0

DIMENSION_NAMES: dict[HofstedeDim, str] = {
    "pdi": "power distance",
    "idv": "individualism",
    "mas": "masculinity",
    "uai": "uncertainty avoidance",
    "lto": "long-term orientation",
    "ivr": "indulgence",
}

# dimension -> (low pole adjective, high pole adjective, balanced phrase)
HOFSTEDE_POLES: dict[HofstedeDim, tuple[str, str, str]] = {
    "pdi": ("egalitarian", "hierarchical", "balanced between hierarchy and equality"),
    "idv": ("collective", "individualistic", "balanced between individualism and collectivism"),
    "mas": ("caring", "competitive", "balanced between competition and care"),
    "uai": ("tolerant of uncertainty", "uncertainty-avoiding", "balanced in how it handles uncertainty"),
    "lto": ("normative", "pragmatic", "balanced between tradition and pragmatism"),
    "ivr": ("restrained", "indulgent", "balanced between restraint and indulgence"),
}

# axis -> phrases for the six bands, from most negative to most positive
IW_PHRASES: dict[IWAxis, tuple[str, str, str, str, str, str]] = {
    "survival_self_expression": (
        "strong survival values",
        "moderate survival values",
        "little survival values",
        "little self-expression values",
        "moderate self-expression values",
        "strong self-expression values",
    ),
    "traditional_secular": (
        "strongly traditional",
        "moderately traditional",
        "slightly traditional",
        "slightly secular",
        "moderately secular",
        "strongly secular",
    ),
}


def hofstede_phrase(dim: HofstedeDim, score: float) -> str:
    """The graded phrase for one Hofstede score."""
    low, high, balanced = HOFSTEDE_POLES[dim]
    if score < HOFSTEDE_HIGHLY_LOW:
        return f"highly {low}"
    if score < HOFSTEDE_BALANCED_LOW:
        return f"moderately {low}"
    if score <= HOFSTEDE_BALANCED_HIGH:
        return balanced
    if score <= HOFSTEDE_HIGHLY_HIGH:
        return f"moderately {high}"
    return f"highly {high}"


def iw_phrase(axis: IWAxis, value: float) -> str:
    """The graded phrase for one Inglehart-Welzel map coordinate."""
    p = IW_PHRASES[axis]
    if value <= -IW_STRONG:
        return p[0]
    if value <= -IW_MODERATE:
        return p[1]
    if value < 0:
        return p[2]
    if value < IW_MODERATE:
        return p[3]
    if value < IW_STRONG:
        return p[4]
    return p[5]
