"""Intentions: labels, which turns get annotated, statistics per culture, JSONL export, CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from test_judge import TABLE, scripted_judge
from test_roleplay_fixtures import action, seed_store, speaker_script
from typer.testing import CliRunner

from clca.cli.main import app
from clca.intents import (
    IntentAnnotation,
    IntentConfig,
    Intention,
    annotate_intents,
    annotation_messages,
    dialogue_stats,
    export_dialogues,
)
from clca.judge import JudgeConfig, judge_episodes
from clca.llm import MockLLM
from clca.roleplay import RoleplayConfig, load_episode, run_roleplay
from clca.store import RunStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def label_of(reason: str | None, confident: bool) -> Intention:
    a = IntentAnnotation(intention="to ask politely", cultural_reason=reason, confident=confident)
    return Intention.from_annotation(a, episode_key="E/x/s0", idx=0, speaker="A", culture="JPN", model="m")


@pytest.mark.parametrize(
    ("reason", "confident", "label"),
    [
        ("Declining directly would be rude to a senior colleague.", True, "cultural"),
        ("Declining directly would be rude to a senior colleague.", False, "generic"),
        (None, True, "generic"),
        (None, False, "generic"),
        ("   ", True, "generic"),
        ("null", True, "generic"),
    ],
)
def test_intention_label_is_cultural_only_with_a_confident_reason(reason, confident, label):
    rec = label_of(reason, confident)
    assert rec.label == label
    assert (rec.cultural_reason is not None) == (label == "cultural")
    if reason and reason.strip() not in ("", "null") and not confident:
        assert rec.unconfident_reason == reason  # kept for inspection, not counted as cultural


def test_empty_intention_is_rejected():
    with pytest.raises(ValueError):
        IntentAnnotation.model_validate_json('{"intention": " ", "cultural_reason": null, "confident": false}')


def annotator(messages: Sequence[Any], _p: Any) -> str:
    text = messages[1]["content"]
    cultural = "Haruto Mori" in text.split("Question:")[1]  # Haruto's turns get a cultural reason
    return json.dumps(
        {
            "intention": "wants to move the talk forward",
            "cultural_reason": "seniority shapes how requests are made" if cultural else None,
            "confident": cultural,
        }
    )


@pytest.fixture()
def judged(run_dir):
    with RunStore(run_dir) as store:
        seed_store(store)
        plan = {1: action("non-verbal communication", "nods"), 4: action("none"), 5: action("leave")}
        run(run_roleplay(store, MockLLM(speaker_script(plan)), RoleplayConfig(max_turns=6, samples=1, progress=False)))
        run(judge_episodes(store, MockLLM(scripted_judge(TABLE)), JudgeConfig(progress=False)))
        yield store


def test_annotates_content_turns_of_kept_episodes(judged):
    store = judged
    llm = MockLLM(annotator)
    s = run(annotate_intents(store, llm, IntentConfig(progress=False)))
    # kept: DEU and JPN; each has content turns 0-3 (turn 4 is none, turn 5 leave)
    assert (s.ok, s.failed) == (8, 0)
    keys = [r.key for r in store.iter("intention")]
    assert keys == [f"{e}/t{i:03d}" for e in ("DEU/t-003/s0", "JPN/t-001/s0") for i in range(4)]
    rec = store.get("intention", "JPN/t-001/s0/t000")
    assert rec.parent == "JPN/t-001/s0" and rec.data["label"] == "cultural" and rec.data["culture"] == "JPN"
    assert store.get("intention", "JPN/t-001/s0/t001").data["label"] == "generic"  # Keiko's turn
    # the annotator is told it is a culture expert and sees the history up to the turn only
    msgs = annotation_messages(load_episode(store, "JPN/t-001/s0"), 2)
    assert "expert in the culture of Japan" in msgs[0]["content"]
    assert "line 2" in msgs[1]["content"] and "line 3" not in msgs[1]["content"]
    assert "question (turn 2)" in msgs[1]["content"].lower().replace("last turn (turn 2)", "question (turn 2)")
    # a re-run does nothing; --all adds the MEX episode
    s = run(annotate_intents(store, llm, IntentConfig(progress=False)))
    assert (s.skipped, s.ok) == (8, 0)
    s = run(annotate_intents(store, llm, IntentConfig(episodes="all", progress=False)))
    assert (s.skipped, s.ok) == (8, 4)


def test_annotation_failure_is_recorded(judged):
    store = judged
    s = run(annotate_intents(store, MockLLM(["not json"]), IntentConfig(progress=False, structured_attempts=1)))
    assert s.failed == 8 and s.ok == 0
    assert store.failure_reasons("intention") == {"StructuredOutputError": 8}


def test_stats_and_export(judged, tmp_path):
    store = judged
    run(annotate_intents(store, MockLLM(annotator), IntentConfig(progress=False)))
    stats = dialogue_stats(store)
    jpn, mex = stats["cultures"]["JPN"], stats["cultures"]["MEX"]
    assert (jpn["generated"], jpn["judged"], jpn["kept"]) == (1, 1, 1)
    assert (mex["generated"], mex["kept"]) == (1, 0)
    assert jpn["turns_per_dialogue"] == 4  # content turns only
    assert jpn["words_per_turn"] == pytest.approx((5 + 1 + 5 + 5) / 4)  # "Haruto Mori says line 0." = 5 words
    assert jpn["cultural_share"] == 0.5 and stats["cultures"]["DEU"]["cultural_share"] == 0.0
    assert stats["total"]["kept"] == 2 and stats["total"]["cultural_share"] == 0.25

    out = tmp_path / "out" / "dialogues.jsonl"
    assert export_dialogues(store, out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["episode_key"] for r in rows] == ["DEU/t-003/s0", "JPN/t-001/s0"]
    r = rows[1]
    assert r["kept"] is True and r["discard_reason"] is None and r["judgement"]["meta"]["label"] == "aligned"
    assert r["scenario"]["characters"][0]["first_name"] == "Haruto" and r["end_reason"] == "leave"
    assert [t["action_type"] for t in r["turns"]][-2:] == ["none", "leave"]
    assert r["turns"][0]["intention"]["label"] == "cultural" and r["turns"][4]["intention"] is None
    assert export_dialogues(store, out, include_all=True) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["culture"], r["kept"]) for r in rows] == [("DEU", True), ("JPN", True), ("MEX", False)]
    assert list(out.parent.iterdir()) == [out]  # no temp files left behind


def test_cli_stats_export_and_errors(judged, tmp_path):
    runner = CliRunner()
    rd = str(judged.run_dir)
    res = runner.invoke(app, ["dialogues", "stats", "--run-dir", rd, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["total"]["kept"] == 2
    res = runner.invoke(app, ["dialogues", "stats", "--run-dir", rd])
    assert res.exit_code == 0 and "JPN" in res.output and "total" in res.output
    out = tmp_path / "x.jsonl"
    res = runner.invoke(app, ["dialogues", "export", "--run-dir", rd, "--out", str(out), "--all"])
    assert res.exit_code == 0 and "wrote 3 dialogues" in res.output
    res = runner.invoke(
        app, ["dialogues", "export", "--run-dir", rd, "--out", str(out), "--drop-confidence", "not_sure"]
    )
    assert res.exit_code == 0 and "wrote 2 dialogues" in res.output
    # dropping only at not_sure: DEU (meta not_aligned, not_sure) goes, MEX (quality bad, very_confident) stays
    assert [json.loads(x)["episode_key"] for x in out.read_text().splitlines()] == ["JPN/t-001/s0", "MEX/t-002/s0"]
    from clca.errors import ConfigError

    res = runner.invoke(app, ["dialogues", "stats", "--run-dir", str(tmp_path / "nope")])
    assert isinstance(res.exception, ConfigError) and "no run database" in str(res.exception)
    res = runner.invoke(app, ["dialogues", "stats", "--run-dir", rd, "--drop-confidence", "sure"])
    assert isinstance(res.exception, ConfigError) and "--drop-confidence" in str(res.exception)
