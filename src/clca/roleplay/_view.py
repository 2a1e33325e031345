"""Template-ready view of a scenario: the one place that knows the Scenario model's field names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..records import RELATIONSHIP_WORDS, relationship_text  # noqa: F401  (re-exported)
from ._deps import Culture, Scenario, culture_code, culture_description, culture_name


@dataclass(frozen=True)
class CharacterView:
    name: str
    age: int
    gender: str
    pronouns: str
    occupation: str
    public_info: str
    personality: str
    secret: str

    def public(self) -> dict[str, Any]:
        """Everything the other side may see (no secret)."""
        d = self.__dict__.copy()
        d["secret"] = ""
        return d


@dataclass(frozen=True)
class ScenarioView:
    culture: str | None
    culture_name: str | None
    setting: str
    relationship: str
    characters: tuple[CharacterView, CharacterView]
    goals: tuple[str, str]


def parse_scenario(data: Any) -> Scenario:
    """A stored scenario row's data -> Scenario (validated)."""
    return Scenario.model_validate(data)


def view(scenario: Scenario, culture: Culture | None = None) -> ScenarioView:
    """culture: the run's culture object for scenario.culture (see `run_culture`); without it a shipped
    culture of that code is looked up."""
    chars = tuple(
        CharacterView(
            name=c.full_name,
            age=c.age,
            gender=c.gender,
            pronouns=c.pronouns,
            occupation=c.occupation,
            public_info=c.public_info,
            personality=c.personality,
            secret=c.secret,
        )
        for c in scenario.characters
    )
    rel = scenario.relationship.value
    return ScenarioView(
        culture=scenario.culture,
        culture_name=culture.name
        if culture is not None
        else culture_name(scenario.culture)
        if scenario.culture
        else None,
        setting=scenario.setting,
        relationship=relationship_text(rel),
        characters=(chars[0], chars[1]),
        goals=(scenario.characters[0].goal, scenario.characters[1].goal),
    )


def culture_profile(culture: str | Culture | None) -> str:
    """The verbalised cultural profile (Hofstede + Inglehart-Welzel words) of a culture; '' when neutral."""
    return culture_description(culture) if culture else ""


def culture_key(culture: str) -> str:
    """A culture name or code -> the ISO3 (or slug) used as the first part of scenario keys."""
    return culture_code(culture)
