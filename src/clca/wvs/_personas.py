"""Personas: real respondents (with their real answers) or draws from per-country demographic marginals."""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import BaseModel, Field

from ._reference import Marginal
from ._survey import DEMOGRAPHIC_FIELDS, Survey

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
}


class Persona(BaseModel):
    id: str
    country: str
    demographics: dict[str, str] = Field(default_factory=dict)
    answers: dict[str, int] = Field(default_factory=dict, description="the respondent's real answers (item -> code)")
    source: str = ""

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


def personas_from_survey(survey: Survey, country: str, n: int, seed: int = 0) -> list[Persona]:
    """n respondents of a country sampled without replacement (all of them when fewer), seeded."""
    rows = survey.of(country)
    rng = random.Random(f"{seed}/{country}")
    picked = rng.sample(rows, k=min(n, len(rows)))
    out = []
    for r in picked:
        out.append(
            Persona(
                id=f"r-{Path(r.source).stem.replace(' ', '_')}-{r.line}",
                country=country,
                demographics=dict(r.demographics),
                answers=dict(r.answers),
                source=f"{Path(r.source).name}:{r.line}",
            )
        )
    return sorted(out, key=lambda p: p.id)


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
