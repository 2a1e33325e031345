"""The annotator's structured output and the stored intention record."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..roleplay import no_description


class IntentAnnotation(BaseModel):
    """What the annotator model returns for one turn."""

    model_config = ConfigDict(json_schema_extra=no_description)

    # no field descriptions: small models copy them into the values; the prompt explains the fields
    intention: str
    cultural_reason: str | None
    confident: bool

    @field_validator("intention")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("cultural_reason")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        return v if v and v.lower() not in ("null", "none", "n/a") else None


Label = Literal["cultural", "generic"]


class Intention(BaseModel):
    """Stored intention (kind "intention", key = turn key, parent = episode key)."""

    model_config = ConfigDict(extra="forbid")

    episode_key: str
    idx: int
    speaker: str
    culture: str
    intention: str
    label: Label
    cultural_reason: str | None = Field(description="set exactly when label is 'cultural'")
    unconfident_reason: str | None = Field(
        None, description="a cultural reason the annotator gave without being confident (not used as cultural)"
    )
    model: str

    @classmethod
    def from_annotation(
        cls, a: IntentAnnotation, *, episode_key: str, idx: int, speaker: str, culture: str, model: str
    ) -> Intention:
        """label = cultural exactly when a cultural reason is given with confidence."""
        cultural = a.cultural_reason is not None and a.confident
        return cls(
            episode_key=episode_key,
            idx=idx,
            speaker=speaker,
            culture=culture,
            intention=a.intention,
            label="cultural" if cultural else "generic",
            cultural_reason=a.cultural_reason if cultural else None,
            unconfident_reason=None if cultural else a.cultural_reason,
            model=model,
        )
