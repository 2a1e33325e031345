"""Data models of the role-play stage: agent actions, stored turns, episodes and the run config."""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import records
from .._bounds import seed_field, temperature_field
from ._deps import Culture, Scenario


# Sotopia's action types (a comment, not a docstring: it would go into the JSON schema models see)
class ActionType(str, Enum):
    speak = "speak"
    non_verbal = "non-verbal communication"
    action = "action"
    leave = "leave"
    none = "none"


#: action types that carry content and therefore need a non-empty argument
CONTENT_ACTIONS = frozenset({ActionType.speak, ActionType.non_verbal, ActionType.action})

# a content argument that is only one of these words is a degenerate output (small models echo the schema)
_SCHEMA_WORDS = frozenset({"argument", "action_type", "action type", *(a.value for a in ActionType)})


def no_description(schema: dict[str, Any], _cls: Any = None) -> None:
    """json_schema_extra hook: drop the docstring from a schema shown to models (small ones echo it)."""
    schema.pop("description", None)


class AgentAction(BaseModel):
    """What one agent does in one turn (the structured output asked from the model)."""

    model_config = ConfigDict(json_schema_extra=no_description)

    # no field descriptions: small models copy them into the values; the turn prompt explains the fields
    action_type: ActionType
    argument: str

    @field_validator("argument")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @model_validator(mode="after")
    def _content_needs_argument(self) -> AgentAction:
        if self.action_type in CONTENT_ACTIONS:
            if not self.argument:
                raise ValueError(f"action_type {self.action_type.value!r} needs a non-empty argument")
            if self.argument.lower().strip(" .!?\"'") in _SCHEMA_WORDS:
                raise ValueError(
                    f"argument {self.argument!r} repeats a schema keyword instead of saying or doing something"
                )
        return self


class EndReason(str, Enum):
    leave = "leave"
    turn_limit = "turn_limit"
    none_repeated = "none_repeated"
    degenerate = "degenerate"  # a side kept echoing the prompt or repeating after its re-asks: ended before it


class Turn(BaseModel):
    """One stored turn (kind "turn", key "<episode key>/t<idx:03d>", parent = episode key)."""

    idx: int
    agent: int = Field(ge=0, le=1, description="0 = first character, 1 = second character")
    speaker: str
    action_type: ActionType
    argument: str
    model: str
    seed: int
    decoding: Literal["structured", "freetext"] | None = Field(
        None, description="how the turn was decoded (None: stored before this was recorded)"
    )

    def words(self) -> int:
        return len(self.argument.split())


class RoleplayConfig(BaseModel):
    """Settings of the role-play stage (`run_roleplay`, `clca roleplay`)."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(2, ge=1, description="episodes per scenario (the paper: 2)")
    max_turns: int = Field(20, ge=1, description="turn limit: actions in one episode (Sotopia: 20)")
    max_consecutive_none: int = Field(2, ge=1, description="end the episode after this many consecutive 'none' actions")
    temperature: float = temperature_field(0.7, "sampling temperature of both agents")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=16, description="token budget of one action")
    seed: int = seed_field(0, "run seed; per-turn seeds derive from (seed, episode key, turn idx)")
    turn_format: Literal["structured", "freetext", "auto"] = Field(
        "auto",
        description="structured: the action as JSON; freetext: the action type by option scoring, then the "
        "argument as free text in character; auto: freetext for in-process models, structured for servers",
    )
    structured_attempts: int = Field(
        3, ge=1, description="re-asks when an action fails validation (schema or echo checks)"
    )
    echo_checks: bool = Field(
        True,
        description="tidy arguments (cut a sentence loop, drop sentences said before and a cut-off end) and reject "
        "those that copy the prompt or repeat a turn (re-asked, then counted); false keeps them as written (the "
        "quality figures still count them), e.g. for scripted test models",
    )
    model_retries: int = Field(
        1, ge=0, description="extra tries of a turn after a model error (with a new seed), then the episode fails"
    )
    concurrency: int = Field(32, ge=1, description="episodes run at the same time")
    culture: str | None = Field(None, description="only scenarios of this culture (ISO3 key prefix)")
    limit: int | None = Field(None, ge=1, description="at most this many scenarios")
    progress: bool = True

    def turn_seed(self, episode_key: str, idx: int, attempt: int = 0) -> int:
        """Deterministic seed of one turn, so a resumed episode samples exactly as before."""
        h = hashlib.sha256(f"{self.seed}|{episode_key}|{idx}|{attempt}".encode()).digest()
        return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


class Episode(BaseModel):
    """An episode as loaded from the store: its scenario and turns."""

    key: str
    scenario_key: str
    sample: int
    culture: str
    status: str = Field(description="ok, failed, or running (turns stored, no episode row yet)")
    error: str | None = None
    end_reason: EndReason | None = None
    models: list[str] = Field(default_factory=list)
    scenario: Scenario
    turns: list[Turn]
    profile: Culture | None = Field(None, exclude=True, description="the run's culture object (custom ones too)")

    @property
    def speak_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.action_type is ActionType.speak]


# the key formats are owned by clca.records; these names stay for the role-play stage's callers
episode_key, turn_key, split_episode_key = records.episode_key, records.turn_key, records.split_episode_key
