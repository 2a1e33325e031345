"""Judge: verdict schemas, discard rule, stored verdicts, kept set as a query, Sotopia-EVAL ranges."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from test_roleplay_fixtures import seed_store, speaker_script

from clca.judge import (
    DiscardRule,
    JudgeConfig,
    SotopiaEval,
    discard_reasons,
    judge_episodes,
    kept_episodes,
)
from clca.llm import MockLLM
from clca.roleplay import RoleplayConfig, run_roleplay
from clca.store import RunStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def verdict(label: str, confidence: str, field: str = "reasoning") -> dict[str, str]:
    return {field: "because of what they said", "label": label, "confidence": confidence}


def judgement(meta: tuple[str, str], quality: tuple[str, str], culture: tuple[str, str] = ("aligned", "confident")):
    return {"culture": verdict(*culture), "quality": verdict(*quality), "meta": verdict(*meta, field="critique")}


# -- discard rule: a table ----------------------------------------------------------------------

RULE_TABLE = [
    # meta verdict, quality verdict, kept by the default rule
    (("aligned", "very_confident"), ("good", "very_confident"), True),
    (("aligned", "not_sure"), ("good", "not_sure"), True),
    (("not_aligned", "very_confident"), ("good", "confident"), False),
    (("not_aligned", "confident"), ("good", "confident"), False),
    (("not_aligned", "not_sure"), ("good", "confident"), True),  # low-confidence rejection keeps it
    (("aligned", "confident"), ("bad", "very_confident"), False),
    (("aligned", "confident"), ("bad", "confident"), False),
    (("aligned", "confident"), ("bad", "not_sure"), True),
    (("not_aligned", "not_sure"), ("bad", "not_sure"), True),
]


@pytest.mark.parametrize(("meta", "quality", "kept"), RULE_TABLE)
def test_default_discard_rule(meta, quality, kept):
    reason = DiscardRule().discard_reason(judgement(meta, quality))
    assert (reason is None) is kept
    if not kept:
        assert reason.startswith(("meta: not_aligned", "quality: bad"))


def test_rule_variants():
    j = judgement(("not_aligned", "not_sure"), ("good", "confident"), culture=("not_aligned", "very_confident"))
    assert DiscardRule().discard_reason(j) is None  # step 1 alone does not drop by default
    assert (
        DiscardRule(culture_not_aligned=["very_confident"]).discard_reason(j) == "culture: not_aligned (very_confident)"
    )
    assert DiscardRule(meta_not_aligned=["not_sure"]).discard_reason(j) == "meta: not_aligned (not_sure)"
    assert DiscardRule().discard_reason({}) == "not judged"
    ok = judgement(("aligned", "confident"), ("good", "confident"))
    assert DiscardRule(min_sotopia_overall=3).discard_reason(ok) == "no sotopia scores"
    assert DiscardRule(min_sotopia_overall=3).discard_reason({**ok, "sotopia": {"overall": 2.5}}).startswith("sotopia")
    assert DiscardRule(min_sotopia_overall=3).discard_reason({**ok, "sotopia": {"overall": 3.5}}) is None


# -- judging with a scripted judge ---------------------------------------------------------------


def scripted_judge(verdicts: dict[str, dict[str, tuple[str, str]]]):
    """Answers each judge prompt from a table: episode's first speaker name -> step -> (label, confidence)."""

    def respond(messages: Sequence[Any], _p: Any) -> str:
        text = messages[1]["content"]
        who = next(name for name in verdicts if name in text)
        if "Question: Is this dialogue aligned" in text:
            return json.dumps(verdict(*verdicts[who]["culture"]))
        if "Question: What is the generation quality" in text:
            return json.dumps(verdict(*verdicts[who]["quality"]))
        if "Two earlier evaluations" in text:
            return json.dumps(verdict(*verdicts[who]["meta"], field="critique"))
        raise AssertionError("unexpected prompt")

    return respond


@pytest.fixture()
def played(run_dir):
    with RunStore(run_dir) as store:
        seed_store(store)
        run(run_roleplay(store, MockLLM(speaker_script()), RoleplayConfig(max_turns=4, samples=1, progress=False)))
        yield store


TABLE = {
    "Haruto Mori": {
        "culture": ("aligned", "confident"),
        "quality": ("good", "confident"),
        "meta": ("aligned", "confident"),
    },
    "Lucia Ramos": {
        "culture": ("aligned", "not_sure"),
        "quality": ("bad", "very_confident"),
        "meta": ("aligned", "confident"),
    },
    "Jonas Weber": {
        "culture": ("not_aligned", "confident"),
        "quality": ("good", "confident"),
        "meta": ("not_aligned", "not_sure"),
    },
}


def test_judge_stores_all_verdicts_and_kept_set_is_a_query(played):
    store = played
    llm = MockLLM(scripted_judge(TABLE))
    s = run(judge_episodes(store, llm, JudgeConfig(progress=False)))
    assert (s.ok, s.failed) == (3, 0)
    assert len(llm.calls) == 9  # culture, quality, meta per episode
    rec = store.get("judgement", "MEX/t-002/s0")
    assert rec.data["quality"]["label"] == "bad" and rec.data["meta"]["critique"] and rec.data["judge_model"] == "mock"
    assert list(rec.data["culture"]) == ["reasoning", "label", "confidence"]  # reasoning before the label
    # the meta prompt saw both earlier verdicts
    meta_prompt = next(m[1]["content"] for m in llm.calls if "Two earlier evaluations" in m[1]["content"])
    assert "Generation quality:" in meta_prompt and "Cultural alignment:" in meta_prompt

    assert kept_episodes(store) == ["DEU/t-003/s0", "JPN/t-001/s0"]
    n = len(llm.calls)
    strict = DiscardRule(meta_not_aligned=["very_confident", "confident", "not_sure"])
    assert kept_episodes(store, strict) == ["JPN/t-001/s0"]
    assert kept_episodes(store, DiscardRule(quality_bad=[])) == ["DEU/t-003/s0", "JPN/t-001/s0", "MEX/t-002/s0"]
    assert kept_episodes(store, culture="MEX") == []
    assert len(llm.calls) == n  # changing the rule made no model calls
    assert discard_reasons(store)["MEX/t-002/s0"] == "quality: bad (very_confident)"

    s = run(judge_episodes(store, llm, JudgeConfig(progress=False)))  # all judged: nothing to do
    assert (s.skipped, s.ok) == (3, 0) and len(llm.calls) == n


def test_judge_failure_is_recorded_and_never_kept(played):
    store = played

    def respond(messages, p):
        if "Lucia Ramos" in messages[1]["content"]:
            return '{"reasoning": "x", "label": "maybe", "confidence": "confident"}'
        return scripted_judge(TABLE)(messages, p)

    s = run(judge_episodes(store, MockLLM(respond), JudgeConfig(progress=False, structured_attempts=2)))
    assert (s.ok, s.failed) == (2, 1) and s.reasons["StructuredOutputError"] == 1
    rec = store.get("judgement", "MEX/t-002/s0")
    assert rec.status == "failed" and "clca judge" in rec.error and "label" in rec.error
    assert "MEX/t-002/s0" not in kept_episodes(store, DiscardRule(quality_bad=[]))
    # a re-run retries the failed episode only
    s = run(judge_episodes(store, MockLLM(scripted_judge(TABLE)), JudgeConfig(progress=False)))
    assert (s.skipped, s.ok) == (2, 1) and store.get("judgement", "MEX/t-002/s0").status == "ok"


# -- Sotopia-EVAL --------------------------------------------------------------------------------

DIMS = {
    "believability": 8,
    "relationship": 2,
    "knowledge": 4,
    "secret": -1,
    "social_rules": 0,
    "financial_and_material_benefits": 1,
    "goal": 7,
}


def sotopia_json(**override: int) -> str:
    return json.dumps({d: {"reasoning": f"about {d}", "score": override.get(d, v)} for d, v in DIMS.items()})


@pytest.mark.parametrize(
    ("dim", "bad"),
    [
        ("believability", 11),
        ("relationship", -6),
        ("knowledge", -1),
        ("secret", 1),
        ("social_rules", -11),
        ("financial_and_material_benefits", 6),
        ("goal", 12),
    ],
)
def test_sotopia_scores_out_of_range_are_validation_errors(dim, bad):
    with pytest.raises(ValueError, match=dim):
        SotopiaEval.model_validate_json(sotopia_json(**{dim: bad}))


def test_sotopia_mode_reasks_out_of_range_then_stores_scores_next_to_clca_verdicts(played):
    store = played
    run(judge_episodes(store, MockLLM(scripted_judge(TABLE)), JudgeConfig(progress=False)))
    answers = iter([sotopia_json(secret=3), sotopia_json()] + [sotopia_json()] * 20)
    llm = MockLLM(lambda _m, _p: next(answers))
    s = run(judge_episodes(store, llm, JudgeConfig(mode="sotopia", progress=False, concurrency=1)))
    assert s.ok == 3
    assert len(llm.calls) == 7  # 3 episodes x 2 agents, plus one re-ask after the out-of-range secret score
    assert "secret.score" in llm.calls[1][-1]["content"]  # the re-ask names the bad field
    data = store.get("judgement", "JPN/t-001/s0").data
    assert "meta" in data and "Evaluate Jonas Weber" in llm.calls[0][1]["content"]  # DEU is first in key order
    overall = sum(DIMS.values()) / 7
    assert data["sotopia"]["agents"][0]["overall"] == pytest.approx(overall)
    assert data["sotopia"]["overall"] == pytest.approx(overall)
    assert kept_episodes(store, DiscardRule(min_sotopia_overall=overall + 0.1)) == []
    assert kept_episodes(store, DiscardRule(min_sotopia_overall=overall - 0.1)) == ["DEU/t-003/s0", "JPN/t-001/s0"]


def test_sotopia_persistent_out_of_range_fails_never_clamps(played):
    store = played
    llm = MockLLM(lambda _m, _p: sotopia_json(goal=11))
    s = run(judge_episodes(store, llm, JudgeConfig(mode="sotopia", progress=False, structured_attempts=2)))
    assert s.failed == 3 and s.ok == 0
    rec = store.get("judgement", "JPN/t-001/s0")
    assert rec.status == "failed" and "goal.score" in rec.error and "sotopia" not in (rec.data or {})
