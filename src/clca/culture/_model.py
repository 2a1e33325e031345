"""The Culture model: identity, Hofstede scores, Inglehart-Welzel map position, prompt text."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from ._verbalise import HOFSTEDE_DIMS, IW_AXES, hofstede_phrase, iw_phrase

_Score = Field(default=None, ge=0, le=120, description="Hofstede score, nominally 0-100; null when unknown")
_Coord = Field(default=None, ge=-5, le=5, description="Inglehart-Welzel map score; null when unknown")


class HofstedeScores(BaseModel):
    """Hofstede's six dimensions. A missing dimension is None, never 0."""

    model_config = ConfigDict(extra="forbid")

    pdi: float | None = _Score
    idv: float | None = _Score
    mas: float | None = _Score
    uai: float | None = _Score
    lto: float | None = _Score
    ivr: float | None = _Score

    def present(self) -> dict[str, float]:
        return {d: v for d in HOFSTEDE_DIMS if (v := getattr(self, d)) is not None}


class IWPosition(BaseModel):
    """Position on the Inglehart-Welzel cultural map (raw map scores). Positive = secular / self-expression."""

    model_config = ConfigDict(extra="forbid")

    traditional_secular: float | None = _Coord
    survival_self_expression: float | None = _Coord
    year: int | None = Field(default=None, ge=1900, le=2100, description="survey year the position comes from")

    def present(self) -> dict[str, float]:
        return {a: v for a in IW_AXES if (v := getattr(self, a)) is not None}


class Culture(BaseModel):
    """A national or user-defined culture."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="ISO alpha-3 for countries, a slug for regions and custom profiles")
    name: str = Field(min_length=1)
    iso2: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    iso3: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    aliases: list[str] = Field(default_factory=list)
    hofstede: HofstedeScores | None = None
    iw: IWPosition | None = None
    description: str | None = Field(default=None, description="free text (custom profiles)")

    @property
    def code(self) -> str:
        """The culture's key in artifact keys and scenario records: ISO3, else the id."""
        return self.iso3 or self.id

    def hofstede_phrases(self) -> list[str]:
        """Graded phrases for the dimensions that are known, in pdi/idv/mas/uai/lto/ivr order."""
        if self.hofstede is None:
            return []
        return [hofstede_phrase(d, v) for d, v in self.hofstede.present().items()]  # type: ignore[arg-type]

    def iw_phrases(self) -> list[str]:
        """Graded phrases for the known map axes (survival/self-expression first, as in the paper)."""
        if self.iw is None:
            return []
        return [iw_phrase(a, v) for a, v in self.iw.present().items()]  # type: ignore[arg-type]

    def describe(self) -> str:
        """The text about this culture that goes into prompts. Unknown figures are left out."""
        parts: list[str] = []
        h = self.hofstede_phrases()
        if h:
            parts.append(f"On Hofstede's cultural dimensions, {self.name} is {', '.join(h)}.")
        m = self.iw_phrases()
        if m:
            owner = "Its" if h else f"{self.name}'s"
            parts.append(f"{owner} position on the Inglehart-Welzel cultural map: {', '.join(m)}.")
        if self.description:
            parts.append(" ".join(self.description.split()))
        if not parts:
            parts.append(f"No cultural figures are known for {self.name}.")
        return " ".join(parts)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
