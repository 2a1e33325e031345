"""The role-play stage's reading of a stored scenario: validated into the Scenario model, then shown
through the one scenario view of clca.records (which the dataset and the report use too)."""

from __future__ import annotations

from typing import Any

from ..records import ScenarioView, scenario_view
from ._deps import Culture, Scenario, culture_code, culture_description, culture_name


def parse_scenario(data: Any) -> Scenario:
    """A stored scenario row's data -> Scenario (validated)."""
    return Scenario.model_validate(data)


def view(scenario: Scenario, culture: Culture | None = None, key: str = "") -> ScenarioView:
    """culture: the run's culture object for scenario.culture (see `run_culture`); without it a shipped
    culture of that code is looked up."""
    name = culture.name if culture is not None else culture_name(scenario.culture) if scenario.culture else None
    return scenario_view(key, scenario, culture_name=name)


def culture_profile(culture: str | Culture | None) -> str:
    """The verbalised cultural profile (Hofstede + Inglehart-Welzel words) of a culture; '' when neutral."""
    return culture_description(culture) if culture else ""


def culture_key(culture: str) -> str:
    """A culture name or code -> the ISO3 (or slug) used as the first part of scenario keys."""
    return culture_code(culture)
