"""Per-turn intention annotation by an LLM told it is an expert in the culture."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._bounds import seed_field, temperature_field
from ..echo import EchoError, check_fields
from ..errors import BackendError, DataError, StructuredOutputError
from ..failures import failure_reason
from ..judge import NEUTRAL_CULTURE, DiscardRule
from ..judge import selected_episodes as judge_selected
from ..llm import LLM, GenParams, Message
from ..prompts import render
from ..records import INTENTION
from ..roleplay import CONTENT_ACTIONS, Episode, culture_profile, load_episode, turn_dicts, turn_key, view
from ..runner import RunSummary, run_stage
from ..store import RunStore
from ._models import IntentAnnotation, Intention


class IntentConfig(BaseModel):
    """Settings of `annotate_intents` (and `clca intents`)."""

    model_config = ConfigDict(extra="forbid")

    episodes: Literal["kept", "all"] = Field(
        "kept", description="kept: episodes the discard rule keeps; all: every ok episode"
    )
    rule: DiscardRule = Field(default_factory=DiscardRule)
    temperature: float = temperature_field(0.0)
    max_tokens: int = Field(256, ge=32)
    seed: int = seed_field()
    structured_attempts: int = Field(3, ge=1)
    model_retries: int = Field(1, ge=0, description="extra tries of a turn after a model error")
    concurrency: int = Field(32, ge=1)
    culture: str | None = Field(None, description="only episodes of this culture")
    limit: int | None = Field(None, ge=1, description="at most this many episodes")
    progress: bool = True


@dataclass(frozen=True)
class _Item:
    episode: Episode
    idx: int

    @property
    def key(self) -> str:
        return turn_key(self.episode.key, self.idx)


def annotation_messages(ep: Episode, idx: int) -> list[Message]:
    """The annotator's request for turn idx: scenario, both public profiles and goals, history up to idx."""
    sv = view(ep.scenario, ep.profile)
    name = sv.culture_name or NEUTRAL_CULTURE
    user = render(
        "intents_annotate",
        culture_name=name,
        culture_profile=culture_profile(ep.profile or sv.culture),
        setting=sv.setting,
        relationship=sv.relationship,
        characters=[c.public() for c in sv.characters],
        goals=list(sv.goals),
        turns=turn_dicts(ep.turns[: idx + 1]),
        speaker=ep.turns[idx].speaker,
        last_idx=idx,
    )
    return [
        {"role": "system", "content": render("intents_system", culture_name=name)},
        {"role": "user", "content": user},
    ]


def selected_episodes(store: RunStore, cfg: IntentConfig) -> list[str]:
    return judge_selected(store, cfg.episodes, cfg.rule, cfg.culture, cfg.limit)


class _Annotator:
    def __init__(self, store: RunStore, llm: LLM, cfg: IntentConfig) -> None:
        self.store, self.llm, self.cfg = store, llm, cfg
        self.reasons: Counter[str] = Counter()

    async def annotate(self, item: _Item) -> bool:
        ep, cfg = item.episode, self.cfg
        turn = ep.turns[item.idx]
        messages = annotation_messages(ep, item.idx)
        last: Exception | None = None
        for attempt in range(cfg.model_retries + 1):
            params = GenParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed + attempt)
            try:
                a = await self.llm.structured(messages, IntentAnnotation, params, max_attempts=cfg.structured_attempts)
            except (StructuredOutputError, BackendError) as e:
                last = e
                continue
            problem = check_fields((a.intention, a.cultural_reason), [messages[0]["content"]])
            if problem is not None:  # an echo of the instructions: re-ask with the next seed
                last = EchoError("IntentAnnotation", attempt + 1, [problem])
                continue
            rec = Intention.from_annotation(
                a, episode_key=ep.key, idx=item.idx, speaker=turn.speaker, culture=ep.culture, model=self.llm.model_id
            )
            self.store.put(INTENTION, item.key, rec.model_dump(mode="json"), parent=ep.key)
            return True
        assert last is not None
        reason = failure_reason(last, f"turn {item.idx}")
        self.store.fail(INTENTION, item.key, reason, parent=ep.key)
        self.reasons[reason.split(":")[0]] += 1
        return False


async def annotate_intents(store: RunStore, llm: LLM, cfg: IntentConfig | None = None) -> RunSummary:
    """Annotate every content turn (speak / non-verbal / action) of the selected episodes."""
    cfg = cfg or IntentConfig()
    items: list[_Item] = []
    for key in selected_episodes(store, cfg):
        ep = load_episode(store, key)
        items += [_Item(ep, t.idx) for t in ep.turns if t.action_type in CONTENT_ACTIONS]
    ann = _Annotator(store, llm, cfg)
    done = lambda it: store.done(INTENTION, it.key)  # noqa: E731
    return await run_stage(items, ann.annotate, cfg, is_done=done, desc="intentions", reasons=ann.reasons)


def episode_intentions(store: RunStore, ep_key: str) -> dict[int, dict[str, Any]]:
    """Stored ok intentions of an episode by turn index (a damaged row is a one-line DataError naming it)."""
    out: dict[int, dict[str, Any]] = {}
    for r in store.iter(INTENTION, parent=ep_key):
        if not isinstance(r.data, dict) or not isinstance(r.data.get("idx"), int):
            raise DataError(
                f"{store.path}: the intention row {r.key} is damaged (no turn index); re-run `clca intents` after "
                "deleting that row, or restore the database"
            )
        out[r.data["idx"]] = r.data
    return out
