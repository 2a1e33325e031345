"""clca.records owns the record kinds, the key formats and the text prompts show of stored records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stored_names import KINDS as KINDS_SEEN_BY_CHECK
from stored_names import stored_name_violations
from test_roleplay_fixtures import SCENARIOS

from clca import records
from clca.dataset import DatasetConfig
from clca.dataset._rows import dialogue_rows
from clca.errors import DataError
from clca.records import DialogueView, TurnView, scenario_view
from clca.roleplay import agent_system_prompt, parse_scenario, view
from clca.scenarios._schema import Relationship
from clca.store import Record

SRC = Path(__file__).resolve().parents[1] / "src" / "clca"


def test_keys_round_trip() -> None:
    sc = records.scenario_key("JPN", "seed-007")
    ep = records.episode_key(sc, 1)
    turn = records.turn_key(ep, 3)
    assert (sc, ep, turn) == ("JPN/seed-007", "JPN/seed-007/s1", "JPN/seed-007/s1/t003")
    assert records.split_episode_key(ep) == (sc, 1)
    assert records.split_turn_key(turn) == (ep, 3)
    assert {records.key_head(k) for k in (sc, ep, turn)} == {"JPN"}
    for bad in ("JPN", "JPN/seed-007/x1"):
        with pytest.raises(ValueError):
            records.split_episode_key(bad)
    with pytest.raises(ValueError):
        records.split_turn_key(ep)


def test_records_owns_every_stored_name() -> None:
    """No kind string, hand-built or hand-split key, or meta name spelled out anywhere outside records/."""
    assert stored_name_violations(SRC) == []
    assert set(KINDS_SEEN_BY_CHECK) == set(records.KINDS)


def test_the_stored_name_check_finds_planted_violations(tmp_path: Path) -> None:
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "_keys.py").write_text('EPISODE = "episode"\nk = "a/b".split("/")\n')  # the owner
    (tmp_path / "stage.py").write_text(
        "from .records import EPISODE, key_prefix\n"
        "def ok(store, culture, row):\n"
        "    store.iter(EPISODE, prefix=key_prefix(culture))\n"
        '    return row["scenario"], {"scenario": 1, "seed": 2}, ("env_id", "scenario")\n'
        "def bad(store, culture, key, kind):\n"
        '    store.iter("episode", prefix=f"{culture}/")\n'
        '    store.get(EPISODE, culture + "/s0")\n'
        '    if kind == "turn" or kind in ("metric", "x"):\n'
        '        return key.split("/")[1], key.rpartition("/")\n'
        '    KIND = "judgement"\n'
        '    titles = {"scenario": "Scenarios", "episode": "Dialogues"}\n'
        '    store.set_meta(f"stage:{kind}", 1), store.get_meta("config")\n'
        '    return key.split("/"), rows["turn"], data["turn"]  # not a record key\n'
        '    return rows["turn"], data["turn"]\n'
    )
    found = stored_name_violations(tmp_path)
    assert found == [
        "stage.py:6: key built by hand",
        "stage.py:6: kind 'episode' spelled out",
        "stage.py:7: key built by hand",
        "stage.py:8: kind compared by its string",
        "stage.py:8: kinds compared by their strings",
        "stage.py:9: key split by hand (.rpartition('/'))",
        "stage.py:9: key split by hand (.split('/'))",
        "stage.py:10: kind assigned as a string",
        "stage.py:11: kinds as dict keys",
        "stage.py:12: meta name spelled out",
        "stage.py:12: meta name spelled out",
        "stage.py:14: kind as a table index",
    ], found


def test_key_builders_and_parsers_round_trip() -> None:
    assert records.answer_key("base", "persona", "EGY", "p3", "Q27", "base") == "base/persona/EGY/p3/Q27"
    assert records.answer_key("base", "persona", "EGY", "p3", "Q27", "perm1") == "base/persona/EGY/p3/Q27/perm1"
    key = records.metric_key("adapted", "cultural", "TUR", "base", "kl")
    assert records.split_metric_key(key) == ("adapted", "cultural", "TUR", "base", "kl")
    spec = records.split_metric_key(records.specificity_key("base", "persona", "EGY"))
    assert spec == records.MetricKey("base", "persona", "EGY", None, records.SPECIFICITY)
    assert records.split_metric_key("base/persona") is None
    assert records.key_head(key) == "adapted" and key.startswith(records.key_prefix("adapted", "cultural", "TUR"))
    assert records.stage_meta("roleplay") == "stage:roleplay" and records.culture_meta("EGY") == "culture/EGY"
    assert records.culture_meta("EGY").startswith(records.CULTURE_META_PREFIX)


def test_dataset_does_not_reach_into_train() -> None:
    for p in (SRC / "dataset").glob("*.py"):
        assert not re.search(r"train\._\w+", p.read_text(encoding="utf-8")), p.name


@pytest.mark.parametrize("rel", [r.value for r in Relationship])
def test_training_rows_show_the_relationship_the_role_play_prompt_showed(rel: str) -> None:
    key = "JPN/t-001"
    data = parse_scenario({**SCENARIOS[key], "relationship": rel}).model_dump(mode="json")
    prompt = agent_system_prompt(view(parse_scenario(data)), "")
    (shown,) = re.findall(r"Relationship between the two people: (.+)", prompt)
    sc = scenario_view(key, data)
    names = [c.name for c in sc.characters]
    turns = tuple(
        TurnView(key=records.turn_key(f"{key}/s0", i), idx=i, agent=i % 2, speaker=names[i % 2],
                 action_type="speak", argument=f"line {i}")
        for i in range(4)
    )  # fmt: skip
    rows, _ = dialogue_rows(DialogueView(f"{key}/s0", sc, turns, kept=True), DatasetConfig())
    assert rows
    for row in rows:
        system = row["messages"][0]["content"]
        (trained,) = re.findall(r"Relationship between you and [^:]+: (.+)\.", system)
        assert trained == shown.strip().rstrip(".") == records.relationship_text(rel)


def test_one_set_of_views_over_stored_records() -> None:
    defined = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if re.search(r"^class (Scenario|Character|Turn|Dialogue)View\b", p.read_text(encoding="utf-8"), re.M)
    )
    assert defined == ["records/_views.py"], defined


def test_views_hide_private_fields_and_carry_intentions() -> None:
    data = parse_scenario({**SCENARIOS["JPN/t-001"], "culture": None}).model_dump(mode="json")
    sc = scenario_view("neutral/t-001", data)
    assert sc.culture is None and sc.culture_code == "neutral"  # a neutral scenario is grouped by its key
    shown = sc.characters[0].public()
    assert shown["secret"] == shown["goal"] == "" and shown["name"] == sc.characters[0].name
    assert sc.goals == (sc.characters[0].goal, sc.characters[1].goal) and all(sc.goals)
    key = records.turn_key("neutral/t-001/s0", 2)
    turn = {"idx": 2, "agent": 0, "speaker": "A", "action_type": "speak", "argument": " hi "}
    ok = Record(
        "intention", key, "ok", {"intention": "greet ", "cultural_reason": "", "label": "generic"}, None, None, 0
    )
    failed = Record("intention", key, "failed", None, "StructuredOutputError: bad", None, 0)
    assert records.turn_view(key, turn, ok).intention == "greet"
    assert records.turn_view(key, turn, ok).cultural_reason is None
    assert records.turn_view(key, turn, failed).intention_error == "StructuredOutputError: bad"
    assert records.turn_view(key, turn).argument == "hi"
    with pytest.raises(DataError, match="turn 'neutral/t-001/s0/t002': missing field 'action_type'"):
        records.turn_view(key, {"idx": 2})
