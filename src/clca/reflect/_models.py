"""What the reflect stage stores: each reflection turn as it completes, then the episode's reflection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Phase = Literal["talk", "statement", "endorse"]


class StatementDraft(BaseModel):
    """The first character's draft of the jointly agreed statement (structured output)."""

    model_config = ConfigDict(extra="forbid")

    norms: list[str] = Field(min_length=1, max_length=3, description="the norm(s) the situation calls for")
    agreed: bool = Field(description="whether the two reached agreement in their talk")
    confidence: int = Field(ge=0, le=100, description="how sure the writer is that these are the norms (0-100)")

    @field_validator("norms")
    @classmethod
    def _norms(cls, v: list[str]) -> list[str]:
        out = [" ".join(n.split()) for n in v]
        if any(not n for n in out):
            raise ValueError("a norm is empty")
        if any(len(n) > 300 for n in out):
            raise ValueError("a norm is longer than 300 characters")
        return out


class Endorsement(BaseModel):
    """The second character's answer to the draft (structured output)."""

    model_config = ConfigDict(extra="forbid")

    agree: bool = Field(description="whether this character agrees with the drafted statement")
    confidence: int = Field(ge=0, le=100, description="how sure this character is that these are the norms (0-100)")


class ReflectionTurn(BaseModel):
    """One stored step of a reflection: a turn of the talk, the draft statement or the endorsement."""

    idx: int
    phase: Phase
    side: int = Field(ge=0, le=1)
    speaker: str
    text: str = Field(description="the words spoken (talk), or the JSON of the draft / endorsement")
    model: str = ""


class AgreedStatement(BaseModel):
    """The jointly agreed statement that ends a reflection."""

    model_config = ConfigDict(extra="forbid")

    norms: list[str] = Field(min_length=1)
    agreement: bool = Field(description="both say they agree: the drafter reached agreement and the other endorses")
    confidence: dict[str, int] = Field(description="speaker name -> confidence 0-100")


class Reflection(BaseModel):
    """A finished reflection of one episode (record kind `reflection`, key = the episode key)."""

    episode: str
    culture: str
    speakers: list[str] = Field(min_length=2, max_length=2)
    turns: list[ReflectionTurn] = Field(description="the talk, alternating between the two characters")
    statement: AgreedStatement
    models: list[str] = Field(default_factory=list)
