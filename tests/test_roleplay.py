"""Role-play mechanics with scripted agents: prompts, end conditions, storage, resume, failure accounting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from test_roleplay_fixtures import SCENARIOS, action, seed_store, speaker_script, turn_of

from clca.errors import BackendError, DataError, RunMismatchError
from clca.llm import ChatResult, GenParams, Message, MockLLM
from clca.roleplay import (
    AgentAction,
    RoleplayConfig,
    Turn,
    agent_messages,
    culture_profile,
    load_episode,
    parse_scenario,
    run_roleplay,
    stored_turns,
    turn_key,
    view,
)
from clca.store import RunStore

FAST = {"progress": False, "samples": 1}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture()
def store(run_dir):
    with RunStore(run_dir) as s:
        yield s


# -- prompts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_each_side_sees_its_own_goal_and_secret_never_the_others(key):
    sc = parse_scenario(SCENARIOS[key])
    sv = view(sc)
    profile = culture_profile(sc.culture)
    history = [
        Turn(idx=0, agent=0, speaker=sv.characters[0].name, action_type="speak", argument="Hi.", model="m", seed=1)
    ]
    for side in (0, 1):
        me, other = sc.characters[side], sc.characters[1 - side]
        for turns in ([], history):
            text = "\n".join(m["content"] for m in agent_messages(sv, side, turns, profile))
            assert me.goal in text and me.secret in text
            assert other.goal not in text and other.secret not in text
            assert other.public_info in text and other.full_name in text
            assert f"{other.full_name}'s goal: Unknown." in text
            assert profile in text and sv.culture_name in text
        # the whole history is passed each turn
        text = agent_messages(sv, side, history, profile)[-1]["content"]
        assert f'{sv.characters[0].name} said: "Hi."' in text


def test_action_validation_rejects_empty_content():
    with pytest.raises(ValueError, match="non-empty argument"):
        AgentAction.model_validate_json(action("speak", "   "))
    with pytest.raises(ValueError):
        AgentAction.model_validate_json(action("shout", "hey"))
    with pytest.raises(ValueError, match="schema keyword"):  # small models echo the schema
        AgentAction.model_validate_json(action("speak", "Argument."))
    assert AgentAction.model_validate_json(action("leave")).argument == ""
    assert AgentAction.model_validate_json(action("non-verbal communication", " nods ")).argument == "nods"


# -- end conditions ------------------------------------------------------------------------------


def test_turn_limit_alternating_speakers_and_stored_turns(store):
    keys = seed_store(store)
    llm = MockLLM(speaker_script())
    s = run(run_roleplay(store, llm, RoleplayConfig(max_turns=5, **FAST)))
    assert (s.ok, s.failed) == (3, 0)
    for k in keys:
        ep = load_episode(store, f"{k}/s0")
        assert ep.status == "ok" and ep.end_reason == "turn_limit"
        assert [t.idx for t in ep.turns] == list(range(5))
        assert [t.agent for t in ep.turns] == [0, 1, 0, 1, 0]
        names = [c.full_name for c in ep.scenario.characters]
        assert [t.speaker for t in ep.turns] == [names[i % 2] for i in range(5)]
        rec = store.get("episode", ep.key)
        assert rec.data["n_turns"] == 5 and rec.data["culture"] == k[:3] and rec.data["models"] == ["mock", "mock"]
        assert store.get("turn", turn_key(ep.key, 4)).parent == ep.key
    assert store.count("turn") == 15 and store.count("episode") == 3


def test_leave_ends_the_episode(store):
    seed_store(store, ["JPN/t-001"])
    llm = MockLLM(speaker_script({3: action("leave")}))
    run(run_roleplay(store, llm, RoleplayConfig(max_turns=20, **FAST)))
    ep = load_episode(store, "JPN/t-001/s0")
    assert ep.end_reason == "leave" and len(ep.turns) == 4 and ep.turns[-1].action_type == "leave"
    assert len(llm.calls) == 4


def test_repeated_none_ends_the_episode(store):
    seed_store(store, ["JPN/t-001"])
    llm = MockLLM(speaker_script({2: action("none"), 3: action("none")}))
    run(run_roleplay(store, llm, RoleplayConfig(max_turns=20, max_consecutive_none=2, **FAST)))
    ep = load_episode(store, "JPN/t-001/s0")
    assert ep.end_reason == "none_repeated" and len(ep.turns) == 4


def test_episode_without_speech_is_failed_not_ok(store):
    seed_store(store, ["JPN/t-001"])
    gestures = {i: action("non-verbal communication", g) for i, g in enumerate(["bows slightly", "nods", "smiles"])}
    llm = MockLLM(speaker_script(gestures))
    s = run(run_roleplay(store, llm, RoleplayConfig(max_turns=3, **FAST)))
    assert (s.ok, s.failed) == (0, 1) and s.reasons["no speech"] == 1
    rec = store.get("episode", "JPN/t-001/s0")
    assert rec.status == "failed" and rec.error.startswith("no speech")
    assert store.count("episode") == 0


# -- failures ------------------------------------------------------------------------------------


def test_persistent_model_failure_marks_episode_failed_with_reason_and_keeps_partial_turns(store):
    seed_store(store, ["JPN/t-001", "MEX/t-002"])

    def respond(messages: Sequence[Any], _p: Any) -> str:
        idx, who = turn_of(messages)
        return action("speak", f"{who} {idx}") if idx < 2 else "I would rather not answer in JSON."

    llm = MockLLM(respond)
    cfg = RoleplayConfig(max_turns=6, structured_attempts=2, model_retries=1, **FAST)
    s = run(run_roleplay(store, llm, cfg))
    assert (s.ok, s.failed) == (0, 2) and s.reasons["StructuredOutputError"] == 2
    for k in ("JPN/t-001/s0", "MEX/t-002/s0"):
        rec = store.get("episode", k)
        assert rec.status == "failed"
        assert rec.error.startswith("StructuredOutputError: turn 2:")
        assert len(stored_turns(store, k)) == 2  # partial turns kept for diagnosis ...
    assert store.count("episode", "ok") == 0  # ... but never counted as a dialogue
    assert store.failure_reasons("episode") == {"StructuredOutputError": 2}
    # attempts: 2 good turns + (1 + model_retries) * structured_attempts asks at turn 2, per episode
    assert len(llm.calls) == 2 * (2 + 2 * 2)


class _Flaky:
    """Raises BackendError on the first `fail` calls, then answers like a scripted agent."""

    model_id = "flaky"

    def __init__(self, fail: int) -> None:
        self.fail, self.n = fail, 0
        self.inner = MockLLM(speaker_script())

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        raise NotImplementedError

    async def structured(self, messages, schema, params=GenParams(), max_attempts=3):  # noqa: B008
        self.n += 1
        if self.n <= self.fail:
            raise BackendError("server unreachable")
        return await self.inner.structured(messages, schema, params, max_attempts)

    async def score_options(self, messages, options):
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def test_backend_error_is_retried_within_bounds(store):
    seed_store(store, ["JPN/t-001"])
    s = run(run_roleplay(store, _Flaky(fail=1), RoleplayConfig(max_turns=3, model_retries=1, **FAST)))
    assert s.ok == 1
    with RunStore(store.run_dir / "b") as other:
        seed_store(other, ["JPN/t-001"])
        s = run(run_roleplay(other, _Flaky(fail=2), RoleplayConfig(max_turns=3, model_retries=1, **FAST)))
        assert s.failed == 1 and s.reasons["BackendError"] == 1
        assert other.get("episode", "JPN/t-001/s0").error.startswith("BackendError: turn 0:")


# -- resume --------------------------------------------------------------------------------------


def test_resume_continues_from_stored_turns_without_regenerating(store):
    seed_store(store, ["JPN/t-001"])
    cfg = RoleplayConfig(max_turns=6, **FAST)

    # first run dies at turn 3 (model error), leaving turns 0-2
    def dying(messages, _p):
        idx, who = turn_of(messages)
        return action("speak", f"first run {who} {idx}") if idx < 3 else "garbage"

    run(run_roleplay(store, MockLLM(dying), cfg.model_copy(update={"model_retries": 0, "structured_attempts": 1})))
    before = [store.get("turn", turn_key("JPN/t-001/s0", i)) for i in range(3)]
    assert all(r is not None for r in before) and store.get("turn", turn_key("JPN/t-001/s0", 3)) is None

    llm = MockLLM(speaker_script())
    s = run(run_roleplay(store, llm, cfg))
    assert s.ok == 1
    assert [turn_of(m)[0] for m in llm.calls] == [3, 4, 5]  # only the missing turns were generated
    assert "first run" in llm.calls[0][-1]["content"]  # the stored history is what the agent sees
    ep = load_episode(store, "JPN/t-001/s0")
    assert [t.idx for t in ep.turns] == list(range(6)) and ep.status == "ok"
    for i, r in enumerate(before):
        assert store.get("turn", turn_key(ep.key, i)).data == r.data
    # an ok episode is skipped on a re-run
    s = run(run_roleplay(store, llm, cfg))
    assert (s.skipped, s.ok) == (1, 0)


def test_turn_seeds_are_deterministic_per_episode_and_turn(store):
    seed_store(store, ["JPN/t-001"])
    seen: list[int | None] = []

    def respond(messages, params):
        seen.append(params.seed)
        return speaker_script()(messages, params)

    cfg = RoleplayConfig(max_turns=3, seed=7, samples=2, progress=False)
    run(run_roleplay(store, MockLLM(respond), cfg))
    stored = [t.seed for k in ("JPN/t-001/s0", "JPN/t-001/s1") for t in stored_turns(store, k)]
    assert sorted(stored) == sorted(seen) and len(set(stored)) == 6
    assert stored[:3] == [cfg.turn_seed("JPN/t-001/s0", i) for i in range(3)]
    assert cfg.turn_seed("a", 1) == RoleplayConfig(seed=7).turn_seed("a", 1) != RoleplayConfig(seed=8).turn_seed("a", 1)


def test_two_models_one_per_side(store):
    seed_store(store, ["DEU/t-003"])
    a, b = MockLLM(speaker_script(), model_id="A"), MockLLM(speaker_script(), model_id="B")
    run(run_roleplay(store, [a, b], RoleplayConfig(max_turns=4, **FAST)))
    ep = load_episode(store, "DEU/t-003/s0")
    assert [t.model for t in ep.turns] == ["A", "B", "A", "B"] and ep.models == ["A", "B"]
    assert len(a.calls) == len(b.calls) == 2


# -- selection and config ------------------------------------------------------------------------


def test_culture_limit_and_samples_select_episodes(store):
    seed_store(store)
    run(
        run_roleplay(
            store, MockLLM(speaker_script()), RoleplayConfig(max_turns=2, samples=2, culture="Japan", progress=False)
        )
    )
    assert [r.key for r in store.iter("episode")] == ["JPN/t-001/s0", "JPN/t-001/s1"]


def test_empty_run_and_changed_settings_are_user_errors(store, run_dir):
    with pytest.raises(DataError, match="no scenarios"):
        run(run_roleplay(store, MockLLM(speaker_script()), RoleplayConfig(**FAST)))
    seed_store(store, ["JPN/t-001"])
    run(run_roleplay(store, MockLLM(speaker_script()), RoleplayConfig(max_turns=2, **FAST)))
    with pytest.raises(RunMismatchError, match="temperature"):
        run(run_roleplay(store, MockLLM(speaker_script()), RoleplayConfig(max_turns=2, temperature=0.1, **FAST)))
    store.put("scenario", "JPN/bad", {"setting": "x"})
    with pytest.raises(DataError, match="JPN/bad"):
        run(run_roleplay(store, MockLLM(speaker_script()), RoleplayConfig(max_turns=2, **FAST)))


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_stages_report_failures_of_a_model_that_never_answers_validly(run_dir):
    """`--model mock` answers 'ok' to everything: every episode must fail with its reason, exit code 1."""
    from typer.testing import CliRunner

    from clca.cli.main import app

    with RunStore(run_dir) as store:
        seed_store(store, ["JPN/t-001", "MEX/t-002"])
    runner = CliRunner()
    args = ["--run-dir", str(run_dir), "--model", "mock", "--quiet"]
    res = runner.invoke(app, ["roleplay", *args, "--samples", "1", "--max-turns", "2"])
    assert res.exit_code == 1, res.output
    assert "episodes: 0 done, 0 already done, 2 failed (StructuredOutputError: 2)" in res.output
    with RunStore(run_dir) as store:
        assert store.count("episode", "ok") == 0 and store.count("turn") == 0
        assert store.failure_reasons("episode") == {"StructuredOutputError": 2}
    res = runner.invoke(app, ["judge", *args])  # nothing to judge: no ok episode
    assert res.exit_code == 0 and "judgements: 0 done" in res.output
    res = runner.invoke(app, ["simulate", *args, "--culture", "Atlantis"])  # the old name still works
    assert res.exit_code != 0 and "unknown culture" in str(res.exception)


def test_schemas_shown_to_models_carry_no_descriptions():
    """Small models echo schema descriptions into values; the prompts explain the fields instead."""
    import json

    from clca.intents import IntentAnnotation
    from clca.judge import CultureVerdict, MetaVerdict, QualityVerdict, SotopiaEval

    for schema in (AgentAction, CultureVerdict, QualityVerdict, MetaVerdict, SotopiaEval, IntentAnnotation):
        assert "description" not in json.dumps(schema.model_json_schema()), schema.__name__
