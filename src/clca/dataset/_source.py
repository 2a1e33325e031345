"""Everything the dataset builder reads from the run database, in ONE module.

The other stages own the stored schemas (clca.scenarios, clca.roleplay, clca.judge, clca.intents);
this module turns their rows into the small read-only views below, so that a change of a field
name upstream is a change here only. Reading is lenient about optional fields and strict about
the ones the rows need (a missing one raises DataError naming the artifact and field).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from ..records import key_head, relationship_text, split_episode_key, split_turn_key
from ..store import RunStore

#: turn action types that carry no content and are dropped from conversations
SILENT_ACTIONS = frozenset({"none", ""})


@dataclass(frozen=True)
class CharacterView:
    name: str
    age: int | None
    gender: str
    occupation: str
    public_info: str
    secret: str
    goal: str


@dataclass(frozen=True)
class ScenarioView:
    key: str
    culture: str
    setting: str
    relationship: str
    characters: tuple[CharacterView, CharacterView]


@dataclass(frozen=True)
class TurnView:
    key: str
    idx: int
    agent: int
    speaker: str
    action_type: str
    argument: str
    intention: str | None = None
    cultural_reason: str | None = None
    label: str | None = None  # "cultural" | "generic" | None (no intention stored)


@dataclass(frozen=True)
class DialogueView:
    episode_key: str
    scenario: ScenarioView
    turns: tuple[TurnView, ...]
    kept: bool  # passed the judge filter (False also when there is no judgement)


@dataclass
class SourceReport:
    """What was read and what was left out (with reasons), for DatasetInfo."""

    episodes: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _req(data: dict[str, Any], name: str, where: str) -> Any:
    if not isinstance(data, dict) or name not in data or data[name] is None:
        raise DataError(f"{where}: missing field {name!r}")
    return data[name]


def _character(c: dict[str, Any], goal: str, where: str) -> CharacterView:
    if "name" in c and c["name"]:
        name = str(c["name"])
    else:
        name = f"{_req(c, 'first_name', where)} {c.get('last_name', '')}".strip()
    age = c.get("age")
    return CharacterView(
        name=name,
        age=int(age) if isinstance(age, (int, float)) or (isinstance(age, str) and age.isdigit()) else None,
        gender=str(c.get("gender") or ""),
        occupation=str(c.get("occupation") or ""),
        public_info=str(c.get("public_info") or ""),
        secret=str(c.get("secret") or ""),
        goal=goal,
    )


def scenario_view(key: str, data: dict[str, Any]) -> ScenarioView:
    """A stored Scenario dump (clca.scenarios.Scenario) -> ScenarioView.

    Goals are read from each character's `goal` (clca.scenarios); a top-level `goals` list (Sotopia
    layout) is accepted too. A None culture (neutral scenario) falls back to the key's prefix.
    """
    where = f"scenario {key!r}"
    chars = _req(data, "characters", where)
    if not isinstance(chars, list) or len(chars) != 2:
        raise DataError(f"{where}: expected two characters")
    goals = data.get("goals")
    if not isinstance(goals, list) or len(goals) != 2:
        goals = [_req(c, "goal", f"{where} character {i}") for i, c in enumerate(chars)]
    rel = data.get("relationship") or ""
    culture = str(data.get("culture") or key_head(key))
    return ScenarioView(
        key=key,
        culture=culture,
        setting=str(_req(data, "setting", where)),
        relationship=relationship_text(str(rel)),  # the words the role-play prompt showed
        characters=(
            _character(chars[0], str(goals[0]), f"{where} character 0"),
            _character(chars[1], str(goals[1]), f"{where} character 1"),
        ),
    )


def kept_episode_keys(store: RunStore, rule: dict[str, Any] | None) -> set[str]:
    """Episode keys the judge keeps under `rule` (fields of clca.judge.DiscardRule; None = its default)."""
    from pydantic import ValidationError

    from ..judge import DiscardRule, kept_episodes

    try:
        discard = DiscardRule(**rule) if rule else None
    except ValidationError as e:
        raise DataError(f"judge_rule: {' '.join(str(e).split())}") from None
    return set(kept_episodes(store, discard))


def _turn(key: str, data: dict[str, Any], intent: dict[str, Any] | None) -> TurnView:
    where = f"turn {key!r}"
    action = _req(data, "action_type", where)
    idx = data.get("idx")
    if idx is None:
        idx = split_turn_key(key)[1]
    label = None
    if intent is not None:
        label = intent.get("label")
        if label is None and "cultural" in intent:
            label = "cultural" if intent["cultural"] else "generic"
    return TurnView(
        key=key,
        idx=int(idx),
        agent=int(data.get("agent", data.get("speaker_index", 0))),
        speaker=str(data.get("speaker") or data.get("speaker_name") or ""),
        action_type=str(getattr(action, "value", action)),
        argument=str(data.get("argument") or "").strip(),
        intention=None if intent is None else str(_req(intent, "intention", f"intention {key!r}")).strip(),
        cultural_reason=None if intent is None else (str(intent.get("cultural_reason") or "").strip() or None),
        label=None if label is None else str(label),
    )


def iter_dialogues(
    store: RunStore, *, judge_rule: str | None = None, report: SourceReport | None = None
) -> Iterator[DialogueView]:
    """Every finished episode with its scenario, turns and intentions, in key order."""
    report = report if report is not None else SourceReport()
    kept = kept_episode_keys(store, judge_rule)
    scenarios: dict[str, ScenarioView] = {}
    for ep in store.iter("episode"):
        report.episodes += 1
        data = ep.data if isinstance(ep.data, dict) else {}
        sc_key = str(data.get("scenario_key") or split_episode_key(ep.key)[0])
        if sc_key not in scenarios:
            rec = store.get("scenario", sc_key)
            if rec is None or rec.status != "ok":
                report.skip("scenario missing")
                continue
            scenarios[sc_key] = scenario_view(sc_key, rec.data)
        intents = {r.key: r.data for r in store.iter("intention", parent=ep.key)}
        turns = tuple(
            sorted(
                (_turn(r.key, r.data, intents.get(r.key)) for r in store.iter("turn", parent=ep.key)),
                key=lambda t: t.idx,
            )
        )
        if not turns:
            report.skip("episode without turns")
            continue
        is_kept = ep.key in kept
        report.kept += int(is_kept)
        yield DialogueView(episode_key=ep.key, scenario=scenarios[sc_key], turns=turns, kept=is_kept)


def content_turns(turns: Iterable[TurnView]) -> list[TurnView]:
    """Turns that say or do something (drops 'none' actions and empty arguments except 'leave')."""
    return [t for t in turns if t.action_type not in SILENT_ACTIONS and (t.argument or t.action_type == "leave")]
