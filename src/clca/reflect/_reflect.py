"""The reflect stage: after role-play, the two characters talk the episode over as peers and agree on a norm.

Per episode, with each character still played by its role-play model (character 0 by the teacher,
character 1 by the partner) and each prompt holding only that character's own goal plus the transcript:

  talk       `turns` short turns, alternating, character 0 first: what each wanted, what they think was
             expected of them in the culture, where they disagreed;
  statement  character 0 drafts the jointly agreed statement: 1-3 norms, whether they reached agreement,
             its confidence (structured output);
  endorse    character 1 says whether it agrees with the draft, and its confidence (structured output).

Every step is stored as it completes (`reflection_turn`), so a killed run resumes without asking any
step again; the finished `reflection` record holds the talk, the agreed statement (agreement = the drafter
says they agreed and the other endorses) and each speaker's confidence. Model output is validated (empty
or echoed turns are re-asked with the next seed, up to `model_retries` times); an episode whose step
still fails is recorded as failed with its reason, and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..echo import EchoError, echo_problem
from ..errors import BackendError, StructuredOutputError
from ..failures import failure_reason
from ..judge import DiscardRule
from ..judge import selected_episodes as judge_selected
from ..llm import LLM, GenParams, Message
from ..prompts import render
from ..records import REFLECTION, REFLECTION_TURN, reflection_turn_key
from ..roleplay import culture_profile, load_episode, turn_dicts, view
from ..runner import RunSummary, run_stage
from ..store import RunStore
from ._models import AgreedStatement, Endorsement, Reflection, ReflectionTurn, StatementDraft


class ReflectConfig(BaseModel):
    """Settings of the reflect stage (`reflect:` in a run config; off unless `enabled`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="run the stage (collaborative learning; docs/collaborative.md)")
    episodes: Literal["all", "kept"] = Field(
        "all", description="all: every finished episode; kept: the episodes the run's discard rule keeps"
    )
    rule: DiscardRule = Field(default_factory=DiscardRule, description="set from the run's one discard rule")
    turns: int = Field(4, ge=2, le=12, description="turns of the talk before the agreed statement (alternating)")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(96, ge=16, description="token budget of one talk turn")
    statement_max_tokens: int = Field(192, ge=64, description="token budget of the draft and the endorsement")
    seed: int = 0
    model_retries: int = Field(2, ge=0, description="re-asks of a step whose output is empty, echoed or invalid")
    structured_attempts: int = Field(3, ge=1)
    concurrency: int = Field(16, ge=1)
    culture: str | None = Field(None, description="only episodes of this culture")
    limit: int | None = Field(None, ge=1, description="at most this many episodes")
    progress: bool = True

    def step_seed(self, episode_key: str, idx: int, attempt: int) -> int:
        """Deterministic seed of one step, so a resumed reflection samples exactly as before."""
        h = hashlib.sha256(f"reflect|{self.seed}|{episode_key}|{idx}|{attempt}".encode()).digest()
        return int.from_bytes(h[:4], "big")


def selected_episodes(store: RunStore, cfg: ReflectConfig) -> list[str]:
    return judge_selected(store, cfg.episodes, cfg.rule, cfg.culture, cfg.limit)


@dataclass
class _Context:
    """What the prompts of one episode's reflection are built from."""

    key: str
    culture: str
    culture_name: str | None
    system: str
    names: tuple[str, str]
    goals: tuple[str, str]


def _context(store: RunStore, key: str) -> _Context:
    ep = load_episode(store, key)
    sv = view(ep.scenario, ep.profile)
    system = render(
        "reflect_system",
        culture_name=sv.culture_name,
        culture_profile=culture_profile(ep.profile or sv.culture),
        setting=sv.setting,
        relationship=sv.relationship,
        people=[c.public() for c in sv.characters],
        turns=turn_dicts(ep.turns),
    )
    names = (sv.characters[0].name, sv.characters[1].name)
    return _Context(key, ep.culture, sv.culture_name, system, names, (sv.goals[0], sv.goals[1]))


def _talk(turns: list[ReflectionTurn]) -> list[dict[str, str]]:
    return [{"speaker": t.speaker, "text": t.text} for t in turns if t.phase == "talk"]


def reflection_messages(ctx: _Context, side: int, talk: list[ReflectionTurn], step: str, **extra: Any) -> list[Message]:
    """The request of one step for one side: the shared system part (scene, people, transcript), then what only
    this side knows (its own goal, never the other's), the talk so far and the question."""
    user = render(
        f"reflect_{step}",
        me={"name": ctx.names[side]},
        my_goal=ctx.goals[side],
        partner_name=ctx.names[1 - side],
        culture_name=ctx.culture_name,
        talk=_talk(talk),
        **extra,
    )
    return [{"role": "system", "content": ctx.system}, {"role": "user", "content": user}]


def clean_turn(text: str, speaker: str) -> str:
    """A talk turn as spoken: one line, without a leading `Name:` or surrounding quotes."""
    t = " ".join(text.split())
    for prefix in (f"{speaker}:", f"{speaker.split()[0]}:" if speaker.split() else ""):
        if prefix and t.lower().startswith(prefix.lower()):
            t = t[len(prefix) :].strip()
    return t.strip().strip('"').strip()


class _Reflector:
    def __init__(self, store: RunStore, llms: list[LLM], cfg: ReflectConfig) -> None:
        self.store, self.llms, self.cfg = store, llms, cfg
        self.reasons: Counter[str] = Counter()

    def _save(self, ctx: _Context, turn: ReflectionTurn) -> None:
        self.store.put(REFLECTION_TURN, reflection_turn_key(ctx.key, turn.idx), turn.model_dump(), parent=ctx.key)

    async def _talk_turn(self, ctx: _Context, idx: int, talk: list[ReflectionTurn]) -> ReflectionTurn:
        side, cfg = idx % 2, self.cfg
        llm = self.llms[side]
        messages = reflection_messages(ctx, side, talk, "turn", idx=idx, last=cfg.turns - 1)
        last: Exception | None = None
        for attempt in range(cfg.model_retries + 1):
            params = GenParams(
                temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.step_seed(ctx.key, idx, attempt)
            )
            try:
                res = await llm.chat(messages, params)
            except BackendError as e:
                last = e
                continue
            text = clean_turn(res.text, ctx.names[side])
            problem = "empty: the turn has no words" if not text else None
            problem = problem or echo_problem(
                text, prompts=[messages[1]["content"].split("\n\n")[-1]], previous=[t.text for t in talk]
            )
            if problem is None:
                return ReflectionTurn(
                    idx=idx, phase="talk", side=side, speaker=ctx.names[side], text=text, model=llm.model_id
                )
            last = EchoError("reflection turn", attempt + 1, [problem])
        assert last is not None
        raise last

    async def _structured(
        self, ctx: _Context, idx: int, side: int, step: str, schema: Any, talk: list[Any], **extra: Any
    ) -> Any:
        cfg = self.cfg
        messages = reflection_messages(ctx, side, talk, step, **extra)
        last: Exception | None = None
        for attempt in range(cfg.model_retries + 1):
            params = GenParams(  # greedy first; a re-ask samples (the same greedy answer would come back)
                temperature=0.0 if attempt == 0 else max(cfg.temperature, 0.7),
                max_tokens=cfg.statement_max_tokens,
                seed=cfg.step_seed(ctx.key, idx, attempt),
            )
            try:
                out = await self.llms[side].structured(messages, schema, params, max_attempts=cfg.structured_attempts)
            except (StructuredOutputError, BackendError) as e:
                last = e
                continue
            norms = getattr(out, "norms", None) or []
            instructions = [messages[1]["content"].split("\n\n")[-1]]  # the question, not the talk it may quote
            problem = next((p for n in norms if (p := echo_problem(n, prompts=instructions))), None)
            if problem is None:
                return out
            last = EchoError(schema.__name__, attempt + 1, [problem])
        assert last is not None
        raise last

    async def reflect(self, key: str) -> bool:
        cfg = self.cfg
        ctx = _context(self.store, key)
        stored = {
            r.data["idx"]: ReflectionTurn.model_validate(r.data) for r in self.store.iter(REFLECTION_TURN, parent=key)
        }
        steps: list[ReflectionTurn] = []
        try:
            for idx in range(cfg.turns):
                turn = stored.get(idx) or await self._talk_turn(ctx, idx, steps)
                if idx not in stored:
                    self._save(ctx, turn)
                steps.append(turn)
            s_idx, e_idx = cfg.turns, cfg.turns + 1
            if s_idx in stored:
                draft = StatementDraft.model_validate_json(stored[s_idx].text)
            else:
                draft = await self._structured(ctx, s_idx, 0, "statement", StatementDraft, steps)
                self._save(ctx, self._step(ctx, s_idx, "statement", 0, draft))
            if e_idx in stored:
                endorse = Endorsement.model_validate_json(stored[e_idx].text)
            else:
                endorse = await self._structured(ctx, e_idx, 1, "endorse", Endorsement, steps, norms=draft.norms)
                self._save(ctx, self._step(ctx, e_idx, "endorse", 1, endorse))
        except (StructuredOutputError, BackendError) as e:
            reason = failure_reason(e, f"reflection step {len(steps)}")
            self.store.fail(REFLECTION, key, reason, parent=key)
            self.reasons[reason.split(":")[0]] += 1
            return False
        rec = Reflection(
            episode=key,
            culture=ctx.culture,
            speakers=list(ctx.names),
            turns=steps,
            statement=AgreedStatement(
                norms=draft.norms,
                agreement=draft.agreed and endorse.agree,
                confidence={ctx.names[0]: draft.confidence, ctx.names[1]: endorse.confidence},
            ),
            models=sorted({t.model for t in steps} | {self.llms[0].model_id, self.llms[1].model_id}),
        )
        self.store.put(REFLECTION, key, rec.model_dump(mode="json"), parent=key)
        return True

    def _step(self, ctx: _Context, idx: int, phase: str, side: int, out: BaseModel) -> ReflectionTurn:
        return ReflectionTurn(
            idx=idx,
            phase=phase,  # type: ignore[arg-type]
            side=side,
            speaker=ctx.names[side],
            text=json.dumps(out.model_dump(mode="json"), ensure_ascii=False),
            model=self.llms[side].model_id,
        )


async def reflect_episodes(store: RunStore, llms: list[LLM], cfg: ReflectConfig | None = None) -> RunSummary:
    """Reflect on every selected episode (llms: [the model of character 0, the model of character 1])."""
    cfg = cfg or ReflectConfig(enabled=True)
    r = _Reflector(store, llms, cfg)
    return await run_stage(
        selected_episodes(store, cfg),
        r.reflect,
        cfg,
        is_done=lambda key: store.done(REFLECTION, key),
        desc="reflections",
        reasons=r.reasons,
        on_error=lambda key, e: store.fail(REFLECTION, key, failure_reason(e), parent=key),
    )


def load_reflections(store: RunStore) -> dict[str, Reflection]:
    """Stored finished reflections by episode key (what the dataset and the report read)."""
    return {r.key: Reflection.model_validate(r.data) for r in store.iter(REFLECTION)}


def reflection_stats(store: RunStore, top: int = 5) -> dict[str, Any]:
    """Counts, agreement rate and the most frequent agreed norms per culture (for the report and stage line)."""
    refl = load_reflections(store)
    by_culture: dict[str, list[Reflection]] = {}
    for r in refl.values():
        by_culture.setdefault(r.culture, []).append(r)
    out: dict[str, Any] = {
        "reflections": len(refl),
        "failed": store.count(REFLECTION, status="failed"),
        "failure_reasons": store.failure_reasons(REFLECTION),
        "agreement_rate": (sum(r.statement.agreement for r in refl.values()) / len(refl)) if refl else None,
        "cultures": {},
    }
    for c, rs in sorted(by_culture.items()):
        norms = Counter(" ".join(n.lower().split()).rstrip(".") for r in rs for n in r.statement.norms)
        out["cultures"][c] = {
            "reflections": len(rs),
            "agreement_rate": sum(r.statement.agreement for r in rs) / len(rs),
            "top_norms": norms.most_common(top),
        }
    return out
