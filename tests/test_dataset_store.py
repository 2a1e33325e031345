"""A small run database in the shapes the upstream stages write, and tests of the store reader.

`make_run(run_dir)` is imported by the other dataset/train tests: scenarios, episodes, turns,
judgements and intentions as rows of a real RunStore (SQLite). All text is written for these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clca.dataset import iter_dialogues
from clca.errors import DataError
from clca.records import scenario_view
from clca.store import RunStore

PEOPLE = {
    "JPN": [("Haruto", "Sato", 34, "Man", "teacher"), ("Yui", "Kondo", 29, "Woman", "nurse")],
    "MEX": [("Diego", "Ramirez", 41, "Man", "mechanic"), ("Lucia", "Torres", 38, "Woman", "chef")],
}


def scenario_data(culture: str, i: int) -> dict:
    (f0, l0, a0, g0, o0), (f1, l1, a1, g1, o1) = PEOPLE[culture]
    return {
        "culture": culture,
        "setting": f"Setting number {i}: two neighbours meet at a community event in {culture}.",
        "characters": [
            {
                "first_name": f0,
                "last_name": l0,
                "age": a0,
                "gender": g0,
                "pronouns": "he/him",
                "occupation": o0,
                "public_info": f"{f0} volunteers at the local library.",
                "secret": f"{f0} lost his job last month (scenario {i}).",
                "goal": f"Borrow a ladder politely (goal A{i})",
            },
            {
                "first_name": f1,
                "last_name": l1,
                "age": a1,
                "gender": g1,
                "pronouns": "she/her",
                "occupation": o1,
                "public_info": f"{f1} moved to the area recently.",
                "secret": f"{f1} is planning to leave town (scenario {i}).",
                "goal": f"Keep the ladder for the weekend (goal B{i})",
            },
        ],
        "relationship": "acquaintance",
    }


#: (agent, action_type, argument): agent 0 opens; two consecutive turns of agent 1; a "none" turn
SCRIPT = [
    (0, "speak", "Good evening, it is nice to see you here."),
    (1, "speak", "Good evening! Thank you for inviting me."),
    (1, "non-verbal communication", "bows slightly"),
    (0, "none", ""),
    (0, "speak", "Could I perhaps ask a small favour of you?"),
    (1, "speak", "Of course, please tell me."),
    (0, "leave", ""),
]

INTENTS = {  # turn idx -> (intention, cultural_reason or None)
    0: ("greet the neighbour warmly", "formal greetings show respect between neighbours"),
    1: ("return the greeting and show gratitude", None),
    4: ("prepare the ground for a request", "indirect requests avoid imposing on others"),
}


def judgement(kept: bool) -> dict:
    """Stored verdicts in clca.judge's layout; a rejected one is 'bad' with high confidence."""
    return {
        "culture": {"reasoning": "fits", "label": "aligned", "confidence": "confident"},
        "quality": {"reasoning": "ok", "label": "good" if kept else "bad", "confidence": "very_confident"},
        "meta": {"critique": "agree", "label": "aligned", "confidence": "confident"},
    }


def make_run(run_dir: Path, n_scenarios: int = 4, cultures: tuple[str, ...] = ("JPN", "MEX")) -> RunStore:
    """n_scenarios per culture, 2 episodes each; episode s1 of every odd scenario is judge-rejected."""
    store = RunStore(run_dir)
    for culture in cultures:
        for i in range(n_scenarios):
            sc_key = f"{culture}/seed-{i:03d}"
            store.put("scenario", sc_key, scenario_data(culture, i))
            for s in (0, 1):
                ep = f"{sc_key}/s{s}"
                names = [f"{p[0]} {p[1]}" for p in PEOPLE[culture]]
                for idx, (agent, action, arg) in enumerate(SCRIPT):
                    tkey = f"{ep}/t{idx:03d}"
                    text = arg if not arg or action != "speak" else f"{arg} (sample {s}, scenario {i})"
                    turn = {
                        "idx": idx,
                        "agent": agent,
                        "speaker": names[agent],
                        "action_type": action,
                        "argument": text,
                    }
                    store.put("turn", tkey, turn, parent=ep)
                    if idx in INTENTS:
                        intention, reason = INTENTS[idx]
                        store.put(
                            "intention",
                            tkey,
                            {
                                "intention": f"{intention} ({s})",
                                "cultural_reason": reason,
                                "label": "cultural" if reason else "generic",
                            },
                            parent=ep,
                        )
                store.put(
                    "episode",
                    ep,
                    {"scenario_key": sc_key, "culture": culture, "end_reason": "leave", "n_turns": len(SCRIPT)},
                )
                kept = not (i % 2 == 1 and s == 1)
                store.put("judgement", ep, judgement(kept))
    return store


def test_reader_joins_scenarios_turns_intentions_and_judgements(tmp_path: Path) -> None:
    store = make_run(tmp_path / "run", n_scenarios=2, cultures=("JPN",))
    ds = list(iter_dialogues(store))
    assert [d.episode_key for d in ds] == ["JPN/seed-000/s0", "JPN/seed-000/s1", "JPN/seed-001/s0", "JPN/seed-001/s1"]
    assert [d.kept for d in ds] == [True, True, True, False]
    d = ds[0]
    assert d.scenario.characters[0].name == "Haruto Sato" and d.scenario.characters[1].goal.startswith("Keep")
    assert [t.idx for t in d.turns] == list(range(len(SCRIPT)))
    assert d.turns[0].label == "cultural" and d.turns[1].label == "generic" and d.turns[2].intention is None


def test_reader_names_missing_field(tmp_path: Path) -> None:
    bad = scenario_data("JPN", 0)
    del bad["setting"]
    with pytest.raises(DataError, match="scenario 'JPN/x'.*setting"):
        scenario_view("JPN/x", bad)
