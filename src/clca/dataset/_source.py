"""Everything the dataset builder reads from the run database, in ONE module: the finished dialogues
(through the record views of clca.records) and which of them the judge keeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from ..records import (
    EPISODE,
    INTENTION,
    SCENARIO,
    TURN,
    DialogueView,
    ScenarioView,
    dialogue_turns,
    scenario_view,
    split_episode_key,
)
from ..store import RunStore


@dataclass
class SourceReport:
    """What was read and what was left out (with reasons), for DatasetInfo."""

    episodes: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def kept_episode_keys(store: RunStore, rule: dict[str, Any] | None) -> set[str]:
    """Episode keys the judge keeps under `rule` (fields of clca.judge.DiscardRule; None = its default)."""
    from pydantic import ValidationError

    from ..judge import DiscardRule, kept_episodes

    try:
        discard = DiscardRule(**rule) if rule else None
    except ValidationError as e:
        raise DataError(f"judge_rule: {' '.join(str(e).split())}") from None
    return set(kept_episodes(store, discard))


def iter_dialogues(
    store: RunStore, *, judge_rule: str | None = None, report: SourceReport | None = None
) -> Iterator[DialogueView]:
    """Every finished episode with its scenario, turns and intentions, in key order."""
    report = report if report is not None else SourceReport()
    kept = kept_episode_keys(store, judge_rule)
    scenarios: dict[str, ScenarioView] = {}
    for ep in store.iter(EPISODE):
        report.episodes += 1
        data = ep.data if isinstance(ep.data, dict) else {}
        sc_key = str(data.get("scenario_key") or split_episode_key(ep.key)[0])
        if sc_key not in scenarios:
            rec = store.get(SCENARIO, sc_key)
            if rec is None or rec.status != "ok":
                report.skip("scenario missing")
                continue
            scenarios[sc_key] = scenario_view(sc_key, rec.data)
        intents = {r.key: r for r in store.iter(INTENTION, parent=ep.key)}
        turns = dialogue_turns(store.iter(TURN, parent=ep.key), intents)
        if not turns:
            report.skip("episode without turns")
            continue
        is_kept = ep.key in kept
        report.kept += int(is_kept)
        yield DialogueView(episode_key=ep.key, scenario=scenarios[sc_key], turns=turns, kept=is_kept)
