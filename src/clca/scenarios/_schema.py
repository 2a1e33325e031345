"""Sotopia-compatible scenario models.

`Character`, `ScenarioDraft` and `AdaptedDraft` are what a model is asked to produce (flat strings,
ints and one enum, so they work as JSON schemas for structured output). `Scenario` adds what the
pipeline knows (culture, provenance, a passthrough for foreign fields) and is what gets stored.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class Relationship(str, Enum):
    """Sotopia's relationship types; `code` is Sotopia's 0-5 integer."""

    stranger = "stranger"
    know_by_name = "know_by_name"
    acquaintance = "acquaintance"
    friend = "friend"
    romantic = "romantic"
    family = "family"

    @property
    def code(self) -> int:
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int | str) -> Relationship:
        c = int(code)
        for rel, n in _CODES.items():
            if n == c:
                return rel
        raise ValueError(f"relationship code {code!r} is not 0-5")


_CODES = {
    Relationship.stranger: 0,
    Relationship.know_by_name: 1,
    Relationship.acquaintance: 2,
    Relationship.friend: 3,
    Relationship.romantic: 4,
    Relationship.family: 5,
}


def _s(max_length: int) -> Any:
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)]


class Character(BaseModel):
    """One participant. `secret` and `goal` are private to this character."""

    model_config = ConfigDict(extra="forbid")

    first_name: Name
    last_name: Name
    age: int = Field(ge=1, le=120)
    gender: Name
    pronouns: Name
    occupation: Text
    public_info: Text = Field(description="what anyone may know about this person")
    personality: Text
    secret: Text = Field(description="something this person hides")
    goal: Text = Field(description="this person's private social goal in the scenario")

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


# The model-facing character: the same fields with tight length limits, which also bound how much a
# schema-guided decoder lets the model write per field. (Docstrings become schema descriptions.)
class DraftCharacter(BaseModel):
    """One of the two people in the scenario."""

    model_config = ConfigDict(extra="forbid")

    first_name: _s(30)  # type: ignore[valid-type]
    last_name: _s(30)  # type: ignore[valid-type]
    age: int = Field(ge=1, le=120)
    gender: _s(20)  # type: ignore[valid-type]
    pronouns: _s(20)  # type: ignore[valid-type]
    occupation: _s(60)  # type: ignore[valid-type]
    public_info: _s(240) = Field(description="what anyone may know about this person")  # type: ignore[valid-type]
    personality: _s(160)  # type: ignore[valid-type]
    secret: _s(160) = Field(description="something this person hides")  # type: ignore[valid-type]
    goal: _s(240) = Field(description="this person's private social goal in the scenario")  # type: ignore[valid-type]

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def to_character(self) -> Character:
        return Character.model_validate(self.model_dump())


class AdaptedDraft(BaseModel):
    """A scenario rewritten for a culture: the setting and the two people."""

    model_config = ConfigDict(extra="forbid")

    setting: _s(500)  # type: ignore[valid-type]
    characters: list[DraftCharacter] = Field(min_length=2, max_length=2)


class ScenarioDraft(BaseModel):
    """A social scenario: the setting, the relationship between the two people, and the two people."""

    model_config = ConfigDict(extra="forbid")

    setting: _s(500)  # type: ignore[valid-type]
    relationship: Relationship
    characters: list[DraftCharacter] = Field(min_length=2, max_length=2)


class Provenance(BaseModel):
    """Where a scenario comes from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["seed", "adapted", "norm", "sotopia", "custom"]
    id: str = Field(min_length=1, description="seed id, norm id, Sotopia combo id, ...")
    source: str = Field(min_length=1, description="collection or data set the scenario or norm comes from")
    seed_id: str | None = Field(default=None, description="the seed adapted, or the few-shot example used")
    norm: str | None = Field(default=None, description="the norm text a norm-based scenario puts at stake")
    model: str | None = Field(default=None, description="model that wrote the scenario")
    attempts: int | None = Field(default=None, ge=1, description="asks needed for a valid scenario")
    names: Literal["model", "drawn"] | None = Field(
        default=None, description="who named the people: the model, or a draw from Faker's names of the culture"
    )
    rejected: dict[str, int] | None = Field(
        default=None, description="problems of the rejected asks by reason (e.g. name_not_of_culture)"
    )


class Scenario(BaseModel):
    """A two-person social scenario, Sotopia-style, optionally tied to a culture."""

    model_config = ConfigDict(extra="forbid")

    setting: Text
    relationship: Relationship
    characters: list[Character] = Field(min_length=2, max_length=2)
    culture: str | None = Field(default=None, description="ISO alpha-3 or custom culture code; None = neutral")
    domain: str | None = Field(default=None, description="topic area (family, work, commerce, ...)")
    provenance: Provenance
    extra: dict[str, Any] = Field(default_factory=dict, description="foreign fields kept losslessly")

    def _draft_characters(self) -> list[DraftCharacter]:
        # built without the drafts' length limits: those bound what a model writes, while a seed shown to
        # it may be longer (Sotopia's goals carry hint tags and often exceed 240 characters)
        return [DraftCharacter.model_construct(**c.model_dump()) for c in self.characters]

    def draft(self) -> ScenarioDraft:
        """This scenario in the model-facing shape (used as a few-shot example)."""
        return ScenarioDraft.model_construct(
            setting=self.setting, relationship=self.relationship, characters=self._draft_characters()
        )

    def adapted_draft(self) -> AdaptedDraft:
        """This scenario as shown to a model that adapts it (the relationship is kept, so not shown)."""
        return AdaptedDraft.model_construct(setting=self.setting, characters=self._draft_characters())
