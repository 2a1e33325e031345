"""Personas: real respondents (with their real answers) or draws from per-country demographic marginals."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ._reference import Marginal
from ._survey import DEMOGRAPHIC_FIELDS, Respondent, Survey

Sampling = Literal["weighted", "uniform"]

FIELD_LABELS = {
    "region": "Region",
    "settlement": "Area",
    "sex": "Sex",
    "age": "Age",
    "born_in_country": "Born in this country",
    "marital_status": "Marital status",
    "household_size": "People in the household",
    "education": "Education level",
    "profession": "Occupation",
    "employment": "Employment",
    "social_class": "Social class (own view)",
    "income": "Household income",
    "religion": "Religious denomination",
}


class Persona(BaseModel):
    id: str
    country: str
    demographics: dict[str, str] = Field(default_factory=dict)
    answers: dict[str, int] = Field(default_factory=dict, description="the respondent's real answers (item -> code)")
    source: str = ""
    weight: float = Field(1.0, description="the respondent's survey weight (W_WEIGHT; 1 without weights)")

    def details(self) -> list[tuple[str, str]]:
        """(label, value) pairs in a fixed order, for prompt templates."""
        out = []
        for f in DEMOGRAPHIC_FIELDS:
            v = self.demographics.get(f)
            if v:
                if f == "settlement" and v in ("urban", "rural"):
                    v = f"{v} area"
                elif f == "age" and v.isdigit():
                    v = f"{v} years old"
                elif f == "age":
                    v = f"{v} years old"
                out.append((FIELD_LABELS[f], v))
        return out


def personas_from_survey(
    survey: Survey, country: str, n: int, seed: int = 0, sampling: Sampling = "weighted"
) -> list[Persona]:
    """n personas from a country's respondents, seeded.

    `weighted` (default): respondents drawn with probability proportional to W_WEIGHT (systematic PPS sampling
    after a seeded shuffle), so the personas describe the same population as the weighted survey shares; a
    respondent drawn k times appears k times (ids `...-2`, `...-3`). Files without weights: every weight is 1.
    `uniform`: n respondents without replacement, ignoring weights (all of them when fewer).
    """
    rows = survey.of(country)
    rng = random.Random(f"{seed}/{country}")
    if sampling == "uniform" or not rows:
        picked = rng.sample(rows, k=min(n, len(rows)))
    else:
        picked = _systematic_pps(rows, n, rng)
    out = []
    seen: dict[str, int] = {}
    for r in picked:
        base = f"r-{Path(r.source).stem.replace(' ', '_')}-{r.line}"
        seen[base] = seen.get(base, 0) + 1
        out.append(
            Persona(
                id=base if seen[base] == 1 else f"{base}-{seen[base]}",
                country=country,
                demographics=dict(r.demographics),
                answers=dict(r.answers),
                source=f"{Path(r.source).name}:{r.line}",
                weight=r.weight,
            )
        )
    return sorted(out, key=lambda p: p.id)


def _systematic_pps(rows: list[Respondent], n: int, rng: random.Random) -> list[Respondent]:
    """n draws with probability proportional to weight: a random start and a fixed step over the cumulated
    weights of the shuffled rows (each respondent drawn floor or ceil of n * its weight share times)."""
    order = rows[:]
    rng.shuffle(order)
    total = sum(r.weight for r in order)
    if total <= 0:
        return rng.sample(rows, k=min(n, len(rows)))
    step = total / n
    point = rng.random() * step
    out: list[Respondent] = []
    cum = 0.0
    for r in order:
        cum += r.weight
        while point < cum and len(out) < n:
            out.append(r)
            point += step
    while len(out) < n:  # rounding at the very end
        out.append(order[-1])
    return out


def personas_from_marginals(marginals: dict[str, Marginal], country: str, n: int, seed: int = 0) -> list[Persona]:
    """n synthetic personas: each field drawn independently from the country's marginal shares, seeded.
    Without marginals the personas carry the country only."""
    rng = random.Random(f"{seed}/{country}/marginals")
    out = []
    for k in range(n):
        demo: dict[str, str] = {}
        for f in DEMOGRAPHIC_FIELDS:
            m = marginals.get(f)
            if m and m.values:
                values = list(m.values)
                demo[f] = rng.choices(values, weights=[m.values[v] for v in values], k=1)[0]
        out.append(Persona(id=f"m{k:04d}", country=country, demographics=demo, source="marginals"))
    return out
