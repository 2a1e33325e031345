"""Read-only views over stored records: the one place that knows the stored rows' field names.

Role-play, judge, intents, dataset and report all read scenarios, turns and intentions through these
views, so the role-play prompt and the training rows show the same words, and a change of a stored
field name is a change here only. Reading is lenient about optional fields and strict about the ones
a view needs (a missing one raises DataError naming the record and the field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DataError
from ._keys import key_head, relationship_text, split_turn_key


class Record(Protocol):
    """What the views read of a stored row (`clca.store.Record`; a protocol, so records/ needs no store)."""

    @property
    def key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def error(self) -> str | None: ...


#: turn action types that carry no content and are dropped from conversations
SILENT_ACTIONS = frozenset({"none", ""})


@dataclass(frozen=True)
class CharacterView:
    name: str
    age: int | None
    gender: str
    pronouns: str
    occupation: str
    public_info: str
    personality: str
    secret: str
    goal: str

    def public(self) -> dict[str, Any]:
        """Everything the other side may see (no secret, no goal)."""
        return {**self.__dict__, "secret": "", "goal": ""}


@dataclass(frozen=True)
class ScenarioView:
    key: str
    culture: str | None  # as stored: an ISO3 or custom code, None for a neutral scenario
    culture_name: str | None
    setting: str
    relationship: str  # the words prompts show (relationship_text), not the stored value
    characters: tuple[CharacterView, CharacterView]

    @property
    def goals(self) -> tuple[str, str]:
        return (self.characters[0].goal, self.characters[1].goal)

    @property
    def culture_code(self) -> str:
        """The culture, or the key's first segment for a neutral scenario (how rows are grouped)."""
        return self.culture or key_head(self.key)


@dataclass(frozen=True)
class TurnView:
    key: str
    idx: int
    agent: int
    speaker: str
    action_type: str
    argument: str
    intention: str | None = None  # None: no intention stored (or it failed: see intention_error)
    cultural_reason: str | None = None
    label: str | None = None  # "cultural" | "generic" | None (no intention stored)
    intention_error: str | None = None  # the annotator's error when the intention record failed


@dataclass(frozen=True)
class DialogueView:
    episode_key: str
    scenario: ScenarioView
    turns: tuple[TurnView, ...]
    kept: bool  # passed the judge filter (False also when there is no judgement)


def _req(data: Mapping[str, Any], name: str, where: str) -> Any:
    if not isinstance(data, Mapping) or name not in data or data[name] is None:
        raise DataError(f"{where}: missing field {name!r}")
    return data[name]


def _age(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) or (isinstance(v, str) and v.isdigit()):
        return int(v)
    return None


def _character(c: Mapping[str, Any], goal: str, where: str) -> CharacterView:
    if "name" in c and c["name"]:
        name = str(c["name"])
    else:
        name = f"{_req(c, 'first_name', where)} {c.get('last_name', '')}".strip()
    return CharacterView(
        name=name,
        age=_age(c.get("age")),
        gender=str(c.get("gender") or ""),
        pronouns=str(c.get("pronouns") or ""),
        occupation=str(c.get("occupation") or ""),
        public_info=str(c.get("public_info") or ""),
        personality=str(c.get("personality") or ""),
        secret=str(c.get("secret") or ""),
        goal=goal,
    )


def scenario_view(key: str, data: Any, culture_name: str | None = None) -> ScenarioView:
    """A stored scenario (a clca.scenarios.Scenario dump, or the model itself) -> ScenarioView.

    Goals are read from each character's `goal`; a top-level `goals` list (Sotopia layout) is accepted
    too. culture_name: the name prompts show for the culture (the caller resolves it; None for neutral).
    """
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    where = f"scenario {key!r}"
    chars = _req(data, "characters", where)
    if not isinstance(chars, list) or len(chars) != 2:
        raise DataError(f"{where}: expected two characters")
    goals = data.get("goals")
    if not isinstance(goals, list) or len(goals) != 2:
        goals = [_req(c, "goal", f"{where} character {i}") for i, c in enumerate(chars)]
    rel = data.get("relationship") or ""
    culture = data.get("culture")
    return ScenarioView(
        key=key,
        culture=str(culture) if culture else None,
        culture_name=culture_name,
        setting=str(_req(data, "setting", where)),
        relationship=relationship_text(str(getattr(rel, "value", rel))),
        characters=(
            _character(chars[0], str(goals[0]), f"{where} character 0"),
            _character(chars[1], str(goals[1]), f"{where} character 1"),
        ),
    )


def turn_view(key: str, data: Mapping[str, Any], intention: Record | None = None) -> TurnView:
    """A stored turn (clca.roleplay.Turn dump) and its intention record (clca.intents, any status) -> TurnView."""
    where = f"turn {key!r}"
    action = _req(data, "action_type", where)
    idx = data.get("idx")
    if idx is None:
        idx = split_turn_key(key)[1]
    text = reason = label = error = None
    if intention is not None and intention.status != "ok":
        error = intention.error or "failed"
    elif intention is not None:
        it = intention.data if isinstance(intention.data, Mapping) else {}
        text = str(_req(it, "intention", f"intention {key!r}")).strip()
        reason = str(it.get("cultural_reason") or "").strip() or None
        label = it.get("label")
        if label is None and "cultural" in it:
            label = "cultural" if it["cultural"] else "generic"
    return TurnView(
        key=key,
        idx=int(idx),
        agent=int(data.get("agent", data.get("speaker_index", 0))),
        speaker=str(data.get("speaker") or data.get("speaker_name") or ""),
        action_type=str(getattr(action, "value", action)),
        argument=str(data.get("argument") or "").strip(),
        intention=text,
        cultural_reason=reason,
        label=None if label is None else str(label),
        intention_error=error,
    )


def dialogue_turns(turns: Iterable[Record], intentions: Mapping[str, Record]) -> tuple[TurnView, ...]:
    """An episode's stored turns with their intentions (by turn key), in turn order."""
    views = (turn_view(r.key, r.data if isinstance(r.data, Mapping) else {}, intentions.get(r.key)) for r in turns)
    return tuple(sorted(views, key=lambda t: t.idx))


def content_turns(turns: Iterable[TurnView]) -> list[TurnView]:
    """Turns that say or do something (drops 'none' actions and empty arguments except 'leave')."""
    return [t for t in turns if t.action_type not in SILENT_ACTIONS and (t.argument or t.action_type == "leave")]
