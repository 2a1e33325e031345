"""The Culture model: identity, Hofstede scores, Inglehart-Welzel map position, prompt text."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from ._verbalise import DIMENSION_NAMES, HOFSTEDE_DIMS, IW_AXES, hofstede_phrase, iw_phrase

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


class RegionScores(BaseModel):
    """Hofstede scores a country takes from its region's row because it has none of its own."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(description="the regional row of Hofstede's table, e.g. 'Arab countries'")
    region_id: str = Field(description="the culture id of that row")
    scores: HofstedeScores = Field(description="only the dimensions taken from the region")


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
    hofstede_region: RegionScores | None = Field(
        default=None, description="dimensions without an own score, taken from the country's regional row"
    )

    @property
    def code(self) -> str:
        """The culture's key in artifact keys and scenario records: ISO3, else the id."""
        return self.iso3 or self.id

    def hofstede_scores(self) -> dict[str, float]:
        """Every known Hofstede score: the country's own, completed by its region's where it has none."""
        own = self.hofstede.present() if self.hofstede else {}
        region = self.hofstede_region.scores.present() if self.hofstede_region else {}
        return {d: own[d] if d in own else region[d] for d in HOFSTEDE_DIMS if d in own or d in region}

    def hofstede_source(self) -> str:
        """Where the Hofstede scores come from: own, own + region, region, own (partial) or none."""
        own = len(self.hofstede.present()) if self.hofstede else 0
        region = len(self.hofstede_region.scores.present()) if self.hofstede_region else 0
        if own == len(HOFSTEDE_DIMS):
            return "own"
        if region:
            return "own + region" if own else "region"
        return "own (partial)" if own else "none"

    def hofstede_phrases(self) -> list[str]:
        """Graded phrases for the dimensions that are known, in pdi/idv/mas/uai/lto/ivr order."""
        return [hofstede_phrase(d, v) for d, v in self.hofstede_scores().items()]  # type: ignore[arg-type]

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
            if self.hofstede_region is not None and (taken := list(self.hofstede_region.scores.present())):
                dims = ", ".join(DIMENSION_NAMES[d] for d in taken)  # type: ignore[index]
                parts.append(
                    f"({self.name} has no score of its own for {dims}; these are the scores of its region, "
                    f"{self.hofstede_region.region}.)"
                )
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
