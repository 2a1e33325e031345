"""Run role-play episodes: two agents take turns on one scenario; every turn is stored as it completes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..echo import EchoError, echo_problem
from ..errors import BackendError, DataError, RunMismatchError, StructuredOutputError
from ..failures import failure_reason
from ..llm import LLM, ChatResult, GenParams
from ..records import EPISODE, ROLEPLAY_CONFIG, SCENARIO, TURN, ScenarioView, key_prefix
from ..runner import RunSummary, attempt_seed, run_stage
from ..store import RunStore
from ._deps import run_culture
from ._freetext import Decoding, decoding_for, in_process, parse_argument, sample_type, stops_for, type_options
from ._models import (
    CONTENT_ACTIONS,
    ActionType,
    AgentAction,
    EndReason,
    Episode,
    RoleplayConfig,
    Turn,
    episode_key,
    turn_key,
)
from ._prompts import agent_messages, reply_prefill
from ._tidy import tidy_argument
from ._view import culture_key, culture_profile, parse_scenario, view

# settings that change what is generated; a resumed run must use the same ones
_PINNED = ("temperature", "top_p", "max_tokens", "seed", "max_turns", "max_consecutive_none", "turn_format")


@dataclass(frozen=True)
class _Item:
    scenario_key: str
    sample: int
    sv: ScenarioView

    @property
    def key(self) -> str:
        return episode_key(self.scenario_key, self.sample)


def end_reason(turns: Sequence[Turn], cfg: RoleplayConfig) -> EndReason | None:
    """Why an episode with these turns is over, or None when it goes on."""
    if turns and turns[-1].action_type is ActionType.leave:
        return EndReason.leave
    trailing_none = 0
    for t in reversed(turns):
        if t.action_type is not ActionType.none:
            break
        trailing_none += 1
    if trailing_none >= cfg.max_consecutive_none:
        return EndReason.none_repeated
    if len(turns) >= cfg.max_turns:
        return EndReason.turn_limit
    return None


def stored_turns(store: RunStore, ep_key: str) -> list[Turn]:
    """The contiguous turns 0..n-1 stored for an episode (a later stray turn is ignored and overwritten)."""
    turns: list[Turn] = []
    for rec in store.iter(TURN, parent=ep_key):
        t = Turn.model_validate(rec.data)
        if t.idx != len(turns):
            break
        turns.append(t)
    return turns


def load_scenarios(store: RunStore, cfg: RoleplayConfig, scenario_keys: Sequence[str] | None = None) -> list[Any]:
    """(key, Scenario) pairs to play, filtered by culture / keys / limit. Bad rows are a DataError."""
    prefix = key_prefix(culture_key(cfg.culture)) if cfg.culture else None
    wanted = set(scenario_keys) if scenario_keys is not None else None
    out: list[Any] = []
    for rec in store.iter(SCENARIO, prefix=prefix):
        if wanted is not None and rec.key not in wanted:
            continue
        try:
            out.append((rec.key, parse_scenario(rec.data)))
        except ValueError as e:
            msg = " ".join(str(e).split())[:300]
            raise DataError(f"{store.path}: scenario {rec.key!r} is not a valid scenario: {msg}") from None
        if cfg.limit is not None and len(out) >= cfg.limit:
            break
    if wanted is not None:
        missing = sorted(wanted - {k for k, _ in out})
        if missing and cfg.limit is None:
            raise DataError(f"{store.path}: no stored scenario with key {missing[0]!r}")
    if not out:
        where = f" of culture {culture_key(cfg.culture)}" if cfg.culture else ""
        raise DataError(f"{store.path}: no scenarios{where} in this run; create them with `clca scenarios` first")
    return out


def _check_config(store: RunStore, cfg: RoleplayConfig, models: list[str]) -> None:
    pinned = {k: getattr(cfg, k) for k in _PINNED} | {"models": models}
    old = store.get_meta(ROLEPLAY_CONFIG)
    if old is not None and old != pinned:
        diff = sorted(k for k in pinned if old.get(k) != pinned[k])
        raise RunMismatchError(
            f"{store.run_dir} holds episodes made with other role-play settings ({', '.join(diff)}); "
            "use a new run directory or the same settings"
        )
    store.set_meta(ROLEPLAY_CONFIG, pinned)


class _Simulator:
    def __init__(self, store: RunStore, agents: tuple[LLM, LLM], cfg: RoleplayConfig) -> None:
        self.store, self.agents, self.cfg = store, agents, cfg
        self.reasons: Counter[str] = Counter()
        self.rejected: dict[str, Counter[str]] = {}  # episode key -> echo problems rejected (re-asked)
        self.tidied: dict[str, Counter[str]] = {}  # episode key -> tidy rules applied to accepted arguments
        self._profiles: dict[str, str] = {}

    def profile(self, culture: str) -> str:
        if culture not in self._profiles:
            self._profiles[culture] = culture_profile(run_culture(self.store, culture) if culture else None)
        return self._profiles[culture]

    async def act(self, item: _Item, side: int, turns: list[Turn]) -> tuple[AgentAction, int, Decoding]:
        """One validated action of side, retried on model errors; raises the last error when they persist."""
        cfg, llm = self.cfg, self.agents[side]
        decoding = decoding_for(cfg, llm)
        last: Exception | None = None
        for attempt in range(cfg.model_retries + 1):
            seed = cfg.turn_seed(item.key, len(turns), attempt)
            params = GenParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed)
            try:
                if decoding == "freetext":
                    return await self._freetext(item, side, turns, params), seed, decoding
                return await self._structured(item, side, turns, params), seed, decoding
            except (StructuredOutputError, BackendError) as e:
                last = e
        assert last is not None
        raise last

    def echo(self, item: _Item, side: int, turns: list[Turn], argument: str, ask: str) -> str | None:
        """The echo / degeneracy problem of an argument (None = fine); a problem is counted for the episode."""
        if not self.cfg.echo_checks:
            return None
        sys_msg, user_msg = agent_messages(item.sv, side, [], self.profile(item.sv.culture), ask)
        previous = [t.argument for t in turns if t.action_type in CONTENT_ACTIONS]
        problem = echo_problem(
            argument,
            prompts=(sys_msg["content"], user_msg["content"]),
            previous=previous,
            last=turns[-1].argument if turns else None,
        )
        if problem is not None:
            self.rejected.setdefault(item.key, Counter())[problem.split(":")[0]] += 1
        return problem

    def tidy(self, turns: list[Turn], action: AgentAction, *, cut: bool = False) -> tuple[AgentAction, list[str]]:
        """The action with its argument tidied (loops, sentences said before, a cut-off end: see _tidy), and
        the rules applied (counted by the caller once the action is accepted)."""
        if not self.cfg.echo_checks:
            return action, []
        earlier = [t.argument for t in turns if t.action_type in CONTENT_ACTIONS]
        argument, applied = tidy_argument(action.argument, earlier, cut=cut)
        return (action.model_copy(update={"argument": argument}) if applied else action), applied

    def accept(self, item: _Item, action: AgentAction, applied: list[str]) -> AgentAction:
        if applied:
            self.tidied.setdefault(item.key, Counter()).update(applied)
        return action

    async def _structured(self, item: _Item, side: int, turns: list[Turn], params: GenParams) -> AgentAction:
        cfg, llm = self.cfg, self.agents[side]
        messages = agent_messages(item.sv, side, turns, self.profile(item.sv.culture))
        reasons: list[str] = []
        for k in range(cfg.structured_attempts):
            p = replace(params, seed=None if params.seed is None else attempt_seed(params.seed, k))
            action = await llm.structured(messages, AgentAction, p, max_attempts=cfg.structured_attempts)
            if action.action_type not in CONTENT_ACTIONS:
                return action
            action, applied = self.tidy(turns, action)
            problem = self.echo(item, side, turns, action.argument, "structured")
            if problem is None:
                return self.accept(item, action, applied)
            reasons.append(problem)
        raise EchoError("AgentAction", cfg.structured_attempts, reasons)

    async def _freetext(self, item: _Item, side: int, turns: list[Turn], params: GenParams) -> AgentAction:
        """Action type by option scoring (sampled at the temperature), then the argument as free text."""
        cfg, llm = self.cfg, self.agents[side]
        profile, name = self.profile(item.sv.culture), item.sv.characters[side].name
        options = type_options(turns)
        probs = await llm.score_options(agent_messages(item.sv, side, turns, profile, "type"), options)
        action_type = sample_type(probs, cfg.temperature, params.seed or 0, options)
        if action_type not in CONTENT_ACTIONS:
            return AgentAction(action_type=action_type, argument="")
        ask = action_type.value
        messages = agent_messages(item.sv, side, turns, profile, ask)
        prefilled = in_process(llm)
        if prefilled:
            messages = [*messages, {"role": "assistant", "content": reply_prefill(name, ask)}]
        reasons: list[str] = []
        echoed = False

        async def attempt(k: int) -> ChatResult:
            seed = None if params.seed is None else attempt_seed(params.seed, k)
            return await llm.chat(messages, replace(params, seed=seed, stop=stops_for(action_type)))

        # the first attempt alone; if it fails, the other attempts at once (they differ only by their seeds,
        # so this picks the same reply as asking them one by one, without making the episode wait for each)
        replies: list[ChatResult | BaseException] = []
        for k in range(cfg.structured_attempts):
            if k == len(replies):
                more = range(k, cfg.structured_attempts) if k else range(1)
                replies += await asyncio.gather(*(attempt(j) for j in more), return_exceptions=True)
            res = replies[k]
            if isinstance(res, BaseException):
                raise res
            argument = parse_argument(res.text, action_type, name, prefilled=prefilled)
            try:
                action = AgentAction(action_type=action_type, argument=argument)
            except ValueError as e:
                reasons.append(f"invalid_argument: {' '.join(str(e).split())[:160]}")
                continue
            cut = bool(res.finish_reasons) and res.finish_reasons[0] == "length"
            action, applied = self.tidy(turns, action, cut=cut)
            problem = self.echo(item, side, turns, action.argument, ask)
            if problem is None:
                return self.accept(item, action, applied)
            reasons.append(problem)
            echoed = True
        raise (EchoError if echoed else StructuredOutputError)("free-text argument", cfg.structured_attempts, reasons)

    def _fail(self, item: _Item, reason: str, turns: list[Turn]) -> bool:
        self.store.fail(EPISODE, item.key, reason, data=self._episode_data(item, turns, None))
        self.reasons[reason.split(":")[0]] += 1
        return False

    def _episode_data(self, item: _Item, turns: list[Turn], end: EndReason | None) -> dict[str, Any]:
        return {
            "scenario_key": item.scenario_key,
            "sample": item.sample,
            "culture": item.sv.culture,
            "end_reason": None if end is None else end.value,
            "n_turns": len(turns),
            "n_speak": sum(t.action_type is ActionType.speak for t in turns),
            "models": [a.model_id for a in self.agents],
            "seed": self.cfg.seed,
            "temperature": self.cfg.temperature,
            "turn_format": self.cfg.turn_format,
            "rejected": dict(self.rejected.get(item.key, {})),
            "tidied": dict(self.tidied.get(item.key, {})),
        }

    async def run_episode(self, item: _Item) -> bool:
        turns = stored_turns(self.store, item.key)
        while (end := end_reason(turns, self.cfg)) is None:
            side = len(turns) % 2
            try:
                action, seed, decoding = await self.act(item, side, turns)
            except EchoError as e:
                if not any(t.action_type in CONTENT_ACTIONS for t in turns):
                    return self._fail(item, failure_reason(e, f"turn {len(turns)}"), turns)
                end = EndReason.degenerate  # keep the dialogue up to the last turn that passed the checks
                break
            except (StructuredOutputError, BackendError) as e:
                return self._fail(item, failure_reason(e, f"turn {len(turns)}"), turns)
            turn = Turn(
                idx=len(turns),
                agent=side,
                speaker=item.sv.characters[side].name,
                action_type=action.action_type,
                argument=action.argument,
                model=self.agents[side].model_id,
                seed=seed,
                decoding=decoding,
            )
            self.store.put(TURN, turn_key(item.key, turn.idx), turn.model_dump(mode="json"), parent=item.key)
            turns.append(turn)
        if not any(t.action_type is ActionType.speak for t in turns):
            reason = f"no speech: episode ended ({end.value}) after {len(turns)} turns without a speak turn"
            return self._fail(item, reason, turns)
        self.store.put(EPISODE, item.key, self._episode_data(item, turns, end))
        return True


async def run_roleplay(
    store: RunStore,
    agents: LLM | Sequence[LLM],
    cfg: RoleplayConfig | None = None,
    scenario_keys: Sequence[str] | None = None,
) -> RunSummary:
    """Play cfg.samples episodes of every selected scenario; resumes episodes from their stored turns.

    agents: one LLM playing both sides, or two (first character, second character).
    """
    cfg = cfg or RoleplayConfig()
    pair = (agents, agents) if not isinstance(agents, Sequence) else tuple(agents)
    if len(pair) != 2:
        raise ValueError("agents must be one LLM or a pair of LLMs")
    sim = _Simulator(store, (pair[0], pair[1]), cfg)
    items = [
        _Item(key, s, view(scenario, run_culture(store, scenario.culture) if scenario.culture else None, key))
        for key, scenario in load_scenarios(store, cfg, scenario_keys)
        for s in range(cfg.samples)
    ]
    _check_config(store, cfg, [a.model_id for a in sim.agents])
    done = lambda it: store.done(EPISODE, it.key)  # noqa: E731
    return await run_stage(items, sim.run_episode, cfg, is_done=done, desc="episodes", reasons=sim.reasons)


def load_episode(store: RunStore, key: str) -> Episode:
    """An episode with its scenario and stored turns (status 'running' when it has no episode row yet)."""
    from ._models import split_episode_key

    scenario_key, sample = split_episode_key(key)
    sc_rec = store.get(SCENARIO, scenario_key)
    if sc_rec is None:
        raise DataError(f"{store.path}: episode {key!r} refers to missing scenario {scenario_key!r}")
    scenario = parse_scenario(sc_rec.data)
    rec = store.get(EPISODE, key)
    turns = stored_turns(store, key)
    if rec is None and not turns:
        raise DataError(f"{store.path}: no episode {key!r}")
    data = (rec.data if rec is not None else None) or {}
    profile = run_culture(store, scenario.culture) if scenario.culture else None
    return Episode(
        key=key,
        scenario_key=scenario_key,
        sample=sample,
        culture=data.get("culture") or view(scenario, profile).culture,
        profile=profile,
        status=rec.status if rec is not None else "running",
        error=rec.error if rec is not None else None,
        end_reason=data.get("end_reason") if rec is not None and rec.status == "ok" else None,
        models=data.get("models", []),
        scenario=scenario,
        turns=turns,
    )
