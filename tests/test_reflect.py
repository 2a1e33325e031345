"""The reflect stage (collaborative learning): stored talk, agreed statements, resume, failures, and the
collaborative training task built from stored reflections only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_roleplay_fixtures import SCENARIOS, action, seed_store, speaker_script

from clca.dataset import DatasetConfig, collect_rows
from clca.errors import ConfigError, DataError
from clca.llm import MockLLM
from clca.records import REFLECTION, REFLECTION_TURN
from clca.reflect import ReflectConfig, Reflection, load_reflections, reflect_episodes, reflection_stats
from clca.roleplay import RoleplayConfig, run_roleplay
from clca.store import RunStore

TOPICS = [
    "the other side had a point about timing",
    "asking early would have shown respect",
    "the deadline mattered more to the team",
    "seniority decided who spoke first",
    "a quieter tone keeps the peace at work",
    "both wanted to avoid an open quarrel",
    "a compromise on the dates is fair",
]
GOALS = {key: [c["goal"] for c in sc["characters"]] for key, sc in SCENARIOS.items()}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def play(store: RunStore, turns: int) -> None:
    """Scripted dialogues of the stored scenarios: the last turn leaves."""
    script = MockLLM(speaker_script({turns - 1: action("leave")}))
    run(run_roleplay(store, script, RoleplayConfig(max_turns=turns, samples=1, progress=False)))


def reflector(messages: Sequence[Any], _p: Any) -> str:
    """A scripted pair of characters: talk turns name the speaker; the draft and the endorsement are JSON."""
    user = messages[-1]["content"]
    me = user.split("You are ", 1)[1].split(".", 1)[0]
    if "Write down the statement" in user:
        return json.dumps({"norms": [f"Ask politely, as {me} proposes."], "agreed": True, "confidence": 80})
    if "Do you agree with this statement" in user:
        return json.dumps({"agree": True, "confidence": 65})
    n = user.count("\n") % 7  # the talk grows every turn: a different line each time
    return f"{me} thinks {TOPICS[n]}."


@pytest.fixture()
def played(tmp_path: Path):
    with RunStore(tmp_path / "run") as store:
        seed_store(store, ["JPN/t-001", "MEX/t-002"])
        play(store, 4)
        yield store


def test_reflection_alternates_holds_each_side_own_goal_and_stores_the_statement(played):
    store = played
    llm = MockLLM(reflector)
    s = run(reflect_episodes(store, [llm, llm], ReflectConfig(enabled=True, turns=4, progress=False)))
    assert (s.ok, s.failed) == (2, 0)
    refl = load_reflections(store)
    r = refl["JPN/t-001/s0"]
    assert [t.side for t in r.turns] == [0, 1, 0, 1]
    assert [t.speaker for t in r.turns] == ["Haruto Mori", "Keiko Sato"] * 2
    assert r.statement.norms == ["Ask politely, as Haruto Mori proposes."] and r.statement.agreement is True
    assert r.statement.confidence == {"Haruto Mori": 80, "Keiko Sato": 65}
    Reflection.model_validate(store.get(REFLECTION, "JPN/t-001/s0").data)  # the stored record validates
    # each request holds its own side's goal and never the other's (talk turns, draft, endorsement)
    own, other = GOALS["JPN/t-001"]
    jpn = [m for m in llm.calls if "Haruto Mori" in m[0]["content"]]
    assert len(jpn) == 6  # 4 talk turns + draft + endorsement
    for msgs in jpn:
        me = msgs[1]["content"].split("You are ", 1)[1].split(".", 1)[0]
        mine, theirs = (own, other) if me == "Haruto Mori" else (other, own)
        text = msgs[0]["content"] + msgs[1]["content"]
        assert mine in text and theirs not in text
        assert "accepted a job offer" not in text  # secrets stay out of the reflection
    # the talk so far is in the next side's prompt; the stats count agreement per culture
    assert f"Haruto Mori: {r.turns[0].text}" in jpn[1][1]["content"]
    st = reflection_stats(store)
    assert st["reflections"] == 2 and st["agreement_rate"] == 1.0
    assert st["cultures"]["JPN"]["top_norms"][0][0] == "ask politely, as haruto mori proposes"
    # a re-run asks nothing
    n = len(llm.calls)
    s = run(reflect_episodes(store, [llm, llm], ReflectConfig(enabled=True, turns=4, progress=False)))
    assert (s.skipped, s.ok, len(llm.calls)) == (2, 0, n)


def test_each_character_is_played_by_its_own_model(played):
    a, b = MockLLM(reflector, model_id="teacher"), MockLLM(reflector, model_id="partner")
    run(reflect_episodes(played, [a, b], ReflectConfig(enabled=True, turns=2, progress=False, limit=1)))
    r = next(iter(load_reflections(played).values()))
    assert [t.model for t in r.turns] == ["teacher", "partner"]
    assert all("You are Haruto Mori" in m[1]["content"] for m in a.calls)
    assert all("You are Keiko Sato" in m[1]["content"] for m in b.calls)


def test_failures_are_counted_with_their_reason(played):
    llm = MockLLM(lambda m, p: "   ")  # an empty turn every time
    s = run(reflect_episodes(played, [llm, llm], ReflectConfig(enabled=True, progress=False, model_retries=1)))
    assert (s.ok, s.failed) == (0, 2)
    rec = played.get(REFLECTION, "JPN/t-001/s0")
    assert rec.status == "failed" and "empty" in rec.error
    assert sum(played.failure_reasons(REFLECTION).values()) == 2
    assert len(llm.calls) == 2 * 2  # the first step, asked twice (one retry), per episode


class Killed(Exception):
    """Stands in for the process dying mid-stage."""


class DiesAfter:
    def __init__(self, inner: MockLLM, n: int) -> None:
        self.inner, self.n = inner, n

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    async def chat(self, messages: Any, params: Any = None) -> Any:
        if len(self.inner.calls) >= self.n:
            raise Killed
        return await self.inner.chat(messages, params)

    async def structured(self, messages: Any, schema: Any, params: Any = None, max_attempts: int = 3) -> Any:
        if len(self.inner.calls) >= self.n:
            raise Killed
        return await self.inner.structured(messages, schema, params, max_attempts)


def test_resume_after_a_kill_asks_no_step_again(played, tmp_path):
    cfg = ReflectConfig(enabled=True, turns=4, progress=False, concurrency=1)
    dying = MockLLM(reflector)
    with pytest.raises(Killed):
        run(reflect_episodes(played, [DiesAfter(dying, 8)] * 2, cfg))
    assert played.count(REFLECTION) == 1 and played.count(REFLECTION_TURN) == 8  # one done, one half-way
    again = MockLLM(reflector)
    s = run(reflect_episodes(played, [again, again], cfg))
    assert (s.ok, s.skipped) == (1, 1)
    assert len(dying.calls) + len(again.calls) == 12  # 6 steps per episode, none asked twice
    assert [t.idx for t in load_reflections(played)["MEX/t-002/s0"].turns] == [0, 1, 2, 3]


def _planted(store: RunStore, norm: str) -> None:
    from test_judge import TABLE, scripted_judge

    from clca.judge import JudgeConfig, judge_episodes

    run(judge_episodes(store, MockLLM(scripted_judge(TABLE)), JudgeConfig(progress=False)))
    llm = MockLLM(reflector)
    run(reflect_episodes(store, [llm, llm], ReflectConfig(enabled=True, turns=2, progress=False)))
    rec = store.get(REFLECTION, "JPN/t-001/s0")
    data = rec.data
    data["statement"]["norms"] = [norm]
    data["turns"][0]["text"] = "A planted reflection turn about seniority."
    store.put(REFLECTION, rec.key, data, parent=rec.parent)


def test_collaborative_rows_come_from_stored_reflections_only(played):
    norm = "Requests for leave go through the senior person first, planted."
    _planted(played, norm)
    rows, report, _ = collect_rows(played, DatasetConfig(variant="collab_only", tokenizer=None), progress=False)
    collab = [r for r in rows if r["task"] == "collaborative"]
    assert collab and {r["task"] for r in rows} == {"collaborative"}
    statement = next(r for r in collab if r["id"] == "JPN/t-001/s0/statement")
    assert norm in statement["messages"][-1]["content"]
    assert "A planted reflection turn about seniority." in statement["messages"][0]["content"]
    cont = next(r for r in collab if r["id"] == "JPN/t-001/s0/reflect0")
    assert cont["messages"][-1]["role"] == "assistant"
    assert "A planted reflection turn about seniority." in [m["content"] for m in cont["messages"]]
    # full_collab adds the dialogue task (and intent rows, here skipped: the fixture has no intentions)
    rows, _, _ = collect_rows(played, DatasetConfig(variant="full_collab", tokenizer=None), progress=False)
    assert {"dialogue", "collaborative"} <= {r["task"] for r in rows}


def test_collaborative_variants_need_reflections(tmp_path):
    with RunStore(tmp_path / "r") as store:
        seed_store(store, ["JPN/t-001"])
        play(store, 3)
        with pytest.raises(DataError, match="reflect.enabled"):
            collect_rows(store, DatasetConfig(variant="collab_only", tokenizer=None), progress=False)


def test_a_run_config_with_a_collaborative_variant_needs_the_stage(tmp_path):
    from clca.run_config import RunConfig

    base = {"run_dir": str(tmp_path / "r"), "cultures": ["Egypt"], "dataset": {"variant": "collab_only"}}
    with pytest.raises(Exception, match="reflect.enabled: true"):
        RunConfig.model_validate(base)
    cfg = RunConfig.model_validate({**base, "reflect": {"enabled": True, "episodes": "kept"}})
    assert cfg.reflect.enabled and cfg.stage_configs()["reflect"].episodes == "kept"
    with pytest.raises(ConfigError):
        DatasetConfig(weights={"collab": 1.0})


class Counting:
    """Counts the requests sent to a real model; raises Killed once `die_after` requests were sent."""

    def __init__(self, inner: Any, die_after: int | None = None) -> None:
        self.inner, self.die_after, self.calls = inner, die_after, 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def _tick(self) -> None:
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1

    async def chat(self, messages: Any, params: Any = None) -> Any:
        self._tick()
        return await self.inner.chat(messages, params)

    async def structured(self, messages: Any, schema: Any, params: Any = None, max_attempts: int = 3) -> Any:
        self._tick()
        return await self.inner.structured(messages, schema, params, max_attempts)


@pytest.mark.slow
def test_embedded_model_reflects_on_an_episode_and_resumes_without_asking_again(embedded_llm, tmp_path):
    """The real embedded model plays both characters: the stored talk alternates, the agreed statement validates,
    each prompt holds only its own side's goal; a run killed mid-reflection resumes without repeating a step."""
    cfg = ReflectConfig(enabled=True, turns=2, max_tokens=48, progress=False, concurrency=1)

    def played_store(path: Path) -> RunStore:
        store = RunStore(path)
        seed_store(store, ["JPN/t-001"])
        play(store, 4)
        return store

    with played_store(tmp_path / "whole") as store:
        whole = Counting(embedded_llm)
        s = run(reflect_episodes(store, [whole, whole], cfg))
        assert s.failed == 0, store.failure_reasons(REFLECTION)
        r = load_reflections(store)["JPN/t-001/s0"]
        assert [t.side for t in r.turns] == [0, 1] and all(t.text for t in r.turns)
        assert r.statement.norms and set(r.statement.confidence) == {"Haruto Mori", "Keiko Sato"}
        Reflection.model_validate(store.get(REFLECTION, "JPN/t-001/s0").data)
    with played_store(tmp_path / "killed") as store:
        first = Counting(embedded_llm, die_after=2)  # dies after the two talk turns, before the statement
        with pytest.raises(Killed):
            run(reflect_episodes(store, [first, first], cfg))
        assert store.count(REFLECTION_TURN) >= 1 and store.count(REFLECTION) == 0
        rest = Counting(embedded_llm)
        run(reflect_episodes(store, [rest, rest], cfg))
        assert first.calls + rest.calls == whole.calls  # no step asked twice
        assert load_reflections(store)["JPN/t-001/s0"].model_dump() == r.model_dump()  # the same reflection
