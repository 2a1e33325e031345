"""The ranges of numbers every config shares: seeds and sampling temperatures (finite, bounded), so a config
check refuses what a later stage would crash on (a negative seed at numpy's bootstrap) or send in vain (an
infinite temperature that every server rejects)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

SEED_MAX = 2**32 - 1
TEMPERATURE_MAX = 2.0  # the OpenAI API's own limit


def seed_field(default: int | None = 0, description: str | None = None) -> Any:
    """A seed: an integer from 0 to SEED_MAX."""
    return Field(default, ge=0, le=SEED_MAX, description=description)


def temperature_field(default: float, description: str | None = None) -> Any:
    """A sampling temperature: a finite number from 0 to TEMPERATURE_MAX."""
    return Field(default, ge=0.0, le=TEMPERATURE_MAX, allow_inf_nan=False, description=description)
