"""The scenario model and culture profiles this stage builds on (clca.scenarios, clca.culture)."""

from __future__ import annotations

from typing import Any

from ..culture import Culture
from ..scenarios import Scenario


def culture_description(culture: str | Culture) -> str:
    from ..culture import get_culture

    return (culture if isinstance(culture, Culture) else get_culture(culture)).describe()


def culture_name(culture: str | Culture) -> str:
    from ..culture import get_culture

    return (culture if isinstance(culture, Culture) else get_culture(culture)).name


def run_culture(store: Any, code: str) -> Culture:
    """The culture a run's scenario was made for: the profile the scenario stage recorded in the run
    (custom profiles included), so no later stage looks a custom culture up among the shipped ones."""
    from ..culture import culture_in_run

    return culture_in_run(store, code)


def culture_code(culture: str) -> str:
    from ..culture import get_culture

    return get_culture(culture).code


__all__ = ["Culture", "Scenario", "culture_code", "culture_description", "culture_name", "run_culture"]
