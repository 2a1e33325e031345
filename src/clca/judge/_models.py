"""Verdict schemas (reasoning first, then label and confidence), Sotopia-EVAL scores, the discard rule.

The verdict fields carry no descriptions on purpose: small models copy schema descriptions into the
values; the judge prompts explain every field.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..roleplay import no_description


class Confidence(str, Enum):
    very_confident = "very_confident"
    confident = "confident"
    not_sure = "not_sure"


def _non_empty(v: str) -> str:
    v = v.strip()
    if not v:
        raise ValueError("must not be empty")
    return v


NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]


class _Verdict(BaseModel):
    """A step's verdict: reasoning, label (each step narrows its type; the field keeps its place), confidence."""

    model_config = ConfigDict(json_schema_extra=no_description)

    reasoning: NonEmptyStr
    label: str
    confidence: Confidence


class CultureVerdict(_Verdict):
    """Step 1: is the dialogue aligned with the target culture?"""

    label: Literal["aligned", "not_aligned"]


class QualityVerdict(_Verdict):
    """Step 2: generation quality (bad = repetition near the end, or content not fitting the setting)."""

    label: Literal["good", "bad"]


class MetaVerdict(BaseModel):
    """Meta evaluation: sees both verdicts, gives the final cultural-alignment label."""

    model_config = ConfigDict(json_schema_extra=no_description)

    critique: NonEmptyStr
    label: Literal["aligned", "not_aligned"]
    confidence: Confidence


class _Score(BaseModel):
    reasoning: NonEmptyStr
    score: int


class Score0To10(_Score):
    score: int = Field(ge=0, le=10)


class ScoreMinus5To5(_Score):
    score: int = Field(ge=-5, le=5)


class ScoreMinus10To0(_Score):
    score: int = Field(ge=-10, le=0)


class SotopiaEval(BaseModel):
    """Sotopia-EVAL's seven dimensions for one agent; out-of-range scores fail validation (re-asked)."""

    model_config = ConfigDict(json_schema_extra=no_description)

    model_config = ConfigDict(json_schema_extra=no_description)

    believability: Score0To10
    relationship: ScoreMinus5To5
    knowledge: Score0To10
    secret: ScoreMinus10To0
    social_rules: ScoreMinus10To0
    financial_and_material_benefits: ScoreMinus5To5
    goal: Score0To10

    @property
    def overall(self) -> float:
        scores = [getattr(self, f).score for f in type(self).model_fields]
        return sum(scores) / len(scores)


_HIGH = [Confidence.very_confident, Confidence.confident]


class DiscardRule(BaseModel):
    """Which judged episodes to drop. Default: meta says not_aligned, or quality says bad, with high confidence.

    Applied at query time (`kept_episodes`), so changing it needs no new model calls.
    """

    model_config = ConfigDict(extra="forbid")

    meta_not_aligned: list[Confidence] = Field(
        default_factory=lambda: list(_HIGH), description="drop when the meta evaluation is not_aligned at these"
    )
    quality_bad: list[Confidence] = Field(
        default_factory=lambda: list(_HIGH), description="drop when the quality check is bad at these"
    )
    culture_not_aligned: list[Confidence] = Field(
        default_factory=list, description="drop when step 1 alone is not_aligned at these (off by default)"
    )
    min_sotopia_overall: float | None = Field(
        None, description="also drop when the mean Sotopia overall score of the two agents is below this"
    )

    def discard_reason(self, judgement: dict[str, Any]) -> str | None:
        """Why a judged episode is dropped, or None when it is kept. Missing verdicts drop it."""
        if not all(k in judgement for k in ("culture", "quality", "meta")):
            return "not judged"
        checks = (
            ("meta", "not_aligned", self.meta_not_aligned),
            ("quality", "bad", self.quality_bad),
            ("culture", "not_aligned", self.culture_not_aligned),
        )
        for step, bad_label, levels in checks:
            v = judgement[step]
            if v["label"] == bad_label and Confidence(v["confidence"]) in levels:
                return f"{step}: {bad_label} ({v['confidence']})"
        if self.min_sotopia_overall is not None:
            sot = judgement.get("sotopia")
            if sot is None:
                return "no sotopia scores"
            if sot["overall"] < self.min_sotopia_overall:
                return f"sotopia: overall {sot['overall']:.2f} < {self.min_sotopia_overall}"
        return None
