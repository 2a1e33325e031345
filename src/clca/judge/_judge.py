"""Two-step LLM-as-judge filtering (culture, quality, meta) and optional Sotopia-EVAL scoring."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .._bounds import seed_field, temperature_field
from ..echo import EchoError, check_fields
from ..errors import BackendError, StructuredOutputError
from ..failures import failure_reason
from ..llm import LLM, GenParams, Message
from ..prompts import render
from ..records import EPISODE, JUDGEMENT, key_prefix
from ..roleplay import Episode, culture_key, culture_profile, load_episode, turn_dicts, view
from ..runner import RunSummary, run_stage
from ..store import RunStore
from ._models import CultureVerdict, DiscardRule, MetaVerdict, QualityVerdict, SotopiaEval

Mode = Literal["clca", "sotopia"]
T = TypeVar("T", bound=BaseModel)

#: how judge and annotator prompts name the culture of a neutral scenario (culture None)
NEUTRAL_CULTURE = "the culture the setting implies"


class JudgeConfig(BaseModel):
    """Settings of `judge_episodes` (and `clca judge`)."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field("clca", description="clca: culture + quality + meta verdicts; sotopia: Sotopia-EVAL scores")
    temperature: float = temperature_field(0.0)
    max_tokens: int = Field(384, ge=32, description="token budget of one verdict (sotopia: of one agent's scores)")
    seed: int = seed_field()
    structured_attempts: int = Field(3, ge=1)
    model_retries: int = Field(1, ge=0, description="extra tries of a verdict after a model error")
    concurrency: int = Field(32, ge=1)
    culture: str | None = Field(None, description="only episodes of this culture (ISO3 key prefix)")
    limit: int | None = Field(None, ge=1, description="at most this many episodes")
    progress: bool = True


_SECTIONS: dict[str, tuple[str, ...]] = {"clca": ("culture", "quality", "meta"), "sotopia": ("sotopia",)}


def context_vars(ep: Episode, *, show_private: bool) -> dict[str, Any]:
    """Variables of judge_context.j2 for an episode."""
    sv = view(ep.scenario, ep.profile)
    return {
        "culture_name": sv.culture_name or NEUTRAL_CULTURE,
        "culture_profile": culture_profile(ep.profile or sv.culture),
        "setting": sv.setting,
        "relationship": sv.relationship,
        "characters": [c.__dict__ for c in sv.characters],
        "goals": list(sv.goals),
        "turns": turn_dicts(ep.turns),
        "show_private": show_private,
    }


def _messages(template: str, ctx: dict[str, Any], **extra: Any) -> list[Message]:
    return [
        {"role": "system", "content": render("judge_system", culture_name=ctx["culture_name"])},
        {"role": "user", "content": render(template, **ctx, **extra)},
    ]


class _Judge:
    def __init__(self, store: RunStore, llm: LLM, cfg: JudgeConfig) -> None:
        self.store, self.llm, self.cfg = store, llm, cfg
        self.reasons: Counter[str] = Counter()

    async def ask(self, messages: list[Message], schema: type[T], salt: int) -> T:
        last: Exception | None = None
        for attempt in range(self.cfg.model_retries + 1):
            params = GenParams(
                temperature=self.cfg.temperature,
                max_tokens=self.cfg.max_tokens,
                seed=self.cfg.seed + 1000 * attempt + salt,
            )
            try:
                out = await self.llm.structured(messages, schema, params, max_attempts=self.cfg.structured_attempts)
            except (StructuredOutputError, BackendError) as e:
                last = e
                continue
            reasons = [getattr(out, f, None) for f in ("reasoning", "critique")]
            problem = check_fields(reasons, [messages[0]["content"]])
            if problem is None:
                return out
            last = EchoError(schema.__name__, attempt + 1, [problem])  # an echo of the instructions: re-ask
        assert last is not None
        raise last

    async def clca(self, ep: Episode) -> dict[str, Any]:
        ctx = context_vars(ep, show_private=False)
        culture, quality = await asyncio.gather(
            self.ask(_messages("judge_culture", ctx), CultureVerdict, 1),
            self.ask(_messages("judge_quality", ctx), QualityVerdict, 2),
        )
        both = {"culture": culture.model_dump(mode="json"), "quality": quality.model_dump(mode="json")}
        meta = await self.ask(_messages("judge_meta", ctx, **both), MetaVerdict, 3)
        return {
            "culture": culture.model_dump(mode="json"),
            "quality": quality.model_dump(mode="json"),
            "meta": meta.model_dump(mode="json"),
            "judge_model": self.llm.model_id,
        }

    async def sotopia(self, ep: Episode) -> dict[str, Any]:
        ctx = context_vars(ep, show_private=True)
        sv = view(ep.scenario, ep.profile)
        evals = await asyncio.gather(
            *(
                self.ask(
                    _messages("judge_sotopia", ctx, agent_name=sv.characters[i].name, agent_goal=sv.goals[i]),
                    SotopiaEval,
                    10 + i,
                )
                for i in (0, 1)
            )
        )
        agents = [{**e.model_dump(mode="json"), "overall": e.overall} for e in evals]
        overall = sum(a["overall"] for a in agents) / 2
        return {"sotopia": {"agents": agents, "overall": overall, "judge_model": self.llm.model_id}}

    def is_done(self, key: str) -> bool:
        rec = self.store.get(JUDGEMENT, key)
        if rec is not None and rec.status == "failed" and not self.store.retry_failed:
            return True
        return rec is not None and rec.data is not None and all(s in rec.data for s in _SECTIONS[self.cfg.mode])

    async def judge_one(self, key: str) -> bool:
        ep = load_episode(self.store, key)
        old = self.store.get(JUDGEMENT, key)
        data: dict[str, Any] = dict(old.data or {}) if old is not None else {}
        failures: dict[str, str] = dict(data.pop("failures", {}))
        mode = self.cfg.mode
        try:
            new = await (self.clca(ep) if mode == "clca" else self.sotopia(ep))
        except (StructuredOutputError, BackendError) as e:
            reason = failure_reason(e, f"{mode} judge")
            failures[mode] = reason
            self.store.fail(JUDGEMENT, key, reason, data={**data, "failures": failures})
            self.reasons[reason.split(":")[0]] += 1
            return False
        failures.pop(mode, None)
        data.update(new)
        if failures:  # the other mode failed earlier and has not been redone: the row stays failed
            data["failures"] = failures
            self.store.fail(JUDGEMENT, key, next(iter(failures.values())), data=data)
        else:
            self.store.put(JUDGEMENT, key, data)
        return True


def judged_episode_keys(store: RunStore, culture: str | None = None) -> list[str]:
    prefix = key_prefix(culture_key(culture)) if culture else None
    return [r.key for r in store.iter(EPISODE, prefix=prefix)]


async def judge_episodes(store: RunStore, llm: LLM, cfg: JudgeConfig | None = None) -> RunSummary:
    """Judge every ok episode (of cfg.culture) not yet judged in cfg.mode; every verdict is stored."""
    cfg = cfg or JudgeConfig()
    judge = _Judge(store, llm, cfg)
    keys = judged_episode_keys(store, cfg.culture)
    if cfg.limit is not None:
        keys = keys[: cfg.limit]
    return await run_stage(keys, judge.judge_one, cfg, is_done=judge.is_done, desc="judge", reasons=judge.reasons)


def kept_episodes(store: RunStore, rule: DiscardRule | None = None, culture: str | None = None) -> list[str]:
    """Keys of ok episodes whose stored verdicts pass the rule (a query: no model calls)."""
    rule = rule or DiscardRule()
    return [k for k, reason in discard_reasons(store, rule, culture).items() if reason is None]


def selected_episodes(
    store: RunStore,
    episodes: Literal["kept", "all"],
    rule: DiscardRule,
    culture: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """The episodes a later stage works on (intents, reflect): the ones the rule keeps, or every ok episode;
    optionally of one culture, at most `limit`."""
    if episodes == "kept":
        keys = kept_episodes(store, rule, culture)
    else:
        prefix = key_prefix(culture_key(culture)) if culture else None
        keys = [r.key for r in store.iter(EPISODE, prefix=prefix)]
    return keys[:limit] if limit is not None else keys


def discard_reasons(
    store: RunStore, rule: DiscardRule | None = None, culture: str | None = None
) -> dict[str, str | None]:
    """For every ok episode: why the rule drops it (None = kept). Unjudged episodes show 'not judged'."""
    rule = rule or DiscardRule()
    prefix = key_prefix(culture_key(culture)) if culture else None
    verdicts = {r.key: r.data or {} for r in store.iter(JUDGEMENT, status=None, prefix=prefix)}
    return {r.key: rule.discard_reason(verdicts.get(r.key, {})) for r in store.iter(EPISODE, prefix=prefix)}


def verdicts(store: RunStore, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Stored judgement data of the given episodes (missing ones are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for k in keys:
        rec = store.get(JUDGEMENT, k)
        if rec is not None and rec.data is not None:
            out[k] = rec.data
    return out
