"""The scenario model and culture profiles this stage builds on (clca.scenarios, clca.culture)."""

from __future__ import annotations

from ..scenarios import Scenario


def culture_description(culture: str) -> str:
    from ..culture import get_culture

    return get_culture(culture).describe()


def culture_name(culture: str) -> str:
    from ..culture import get_culture

    return get_culture(culture).name


def culture_code(culture: str) -> str:
    from ..culture import get_culture

    return get_culture(culture).code


__all__ = ["Scenario", "culture_code", "culture_description", "culture_name"]
