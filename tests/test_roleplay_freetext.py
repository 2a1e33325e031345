"""Free-text turn decoding and the echo checks of role-play, intentions and judge reasons (fast, MockLLM)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from test_roleplay_fixtures import SCENARIOS, seed_store

from clca.echo import echo_problem
from clca.intents import dialogue_quality
from clca.llm import MockLLM
from clca.roleplay import (
    ActionType,
    RoleplayConfig,
    agent_messages,
    culture_profile,
    parse_scenario,
    run_roleplay,
    view,
)
from clca.roleplay._freetext import decoding_for, parse_argument, sample_type
from clca.roleplay._roleplay import stored_turns
from clca.roleplay._tidy import tidy_argument
from clca.store import RunStore

HELP = "say something; the argument is the exact words the person says."


@pytest.fixture
def store(run_dir):
    with RunStore(run_dir) as s:
        yield s


def test_echo_checks_catch_prompt_copies_repeats_and_single_repeated_words():
    prompt = 'In each turn ... - "speak": say something; the argument is the exact words the person says.'
    assert echo_problem("is the exact words the person says", prompts=[prompt]).startswith("echo_prompt:")
    assert echo_problem("the exact words", prompts=[prompt]) is None  # fewer than 5 tokens copied
    assert echo_problem("Good morning, how are you?", previous=["good morning how are you"]).startswith("echo_repeat")
    assert echo_problem("doorphone", last="Doorphone").startswith("echo_word")
    assert echo_problem("Doorphone", last="The doorphone is broken again.").startswith("echo_word")
    assert echo_problem("Unexpected!", last="I am fine") is None
    ok = "Ahmed, good morning, what can I do for you?"
    assert echo_problem(ok, prompts=[prompt], previous=["Hello."], last="Hello.") is None


def test_type_sampling_follows_the_temperature_and_the_seed():
    probs = [0.7, 0.1, 0.1, 0.05, 0.05]
    assert sample_type(probs, 0.0, 1) is ActionType.speak
    draws = [sample_type(probs, 0.7, s) for s in range(400)]
    assert draws == [sample_type(probs, 0.7, s) for s in range(400)]  # deterministic per seed
    share = draws.count(ActionType.speak) / len(draws)
    assert 0.75 < share < 0.98  # 0.7 sharpened by T=0.7 -> about 0.87
    flat = [sample_type(probs, 5.0, s) for s in range(400)]
    assert flat.count(ActionType.speak) < draws.count(ActionType.speak)


def test_argument_parsing_of_prefilled_and_server_replies():
    sp = ActionType.speak
    assert parse_argument(" Good morning, sir", sp, "Aiko Tanaka", prefilled=True) == "Good morning, sir"
    assert parse_argument('Aiko Tanaka: "Hello there." she said', sp, "Aiko Tanaka", prefilled=False) == "Hello there."
    assert parse_argument(" nods politely.", ActionType.non_verbal, "Aiko", prefilled=True) == "nods politely."
    assert parse_argument("'s hands shake.", ActionType.action, "Aiko", prefilled=True) == "'s hands shake."


def test_turn_format_auto_is_freetext_in_process_structured_remote():
    class InProcess(MockLLM):
        def prompt_text(self, messages: Any) -> str:
            return ""

    assert decoding_for(RoleplayConfig(), MockLLM()) == "structured"
    assert decoding_for(RoleplayConfig(), InProcess()) == "freetext"
    assert decoding_for(RoleplayConfig(turn_format="freetext"), MockLLM()) == "freetext"
    assert decoding_for(RoleplayConfig(turn_format="structured"), InProcess()) == "structured"


@pytest.mark.parametrize("key", sorted(SCENARIOS))
@pytest.mark.parametrize("ask", ["type", "speak", "non-verbal communication", "action"])
def test_free_text_questions_keep_the_information_asymmetry(key, ask):
    sc = parse_scenario(SCENARIOS[key])
    sv, profile = view(sc), culture_profile(sc.culture)
    for side in (0, 1):
        me, other = sc.characters[side], sc.characters[1 - side]
        msgs = agent_messages(sv, side, [], profile, ask)
        text = "\n".join(m["content"] for m in msgs)
        assert me.goal in text and me.secret in text and other.goal not in text and other.secret not in text
        # both sides and all questions share the system part
        assert msgs[0] == agent_messages(sv, 1 - side, [], profile)[0]


def _speak_only(_m: Sequence[Any], options: Sequence[str]) -> list[float]:
    return [1.0 if o == "speak" else 0.0 for o in options]


def test_planted_echo_of_the_action_type_help_is_rejected_and_counted(store):
    seed_store(store, ["JPN/t-001"])
    structured = MockLLM([json.dumps({"action_type": "speak", "argument": HELP})])
    s = asyncio.run(run_roleplay(store, structured, RoleplayConfig(samples=1, max_turns=2, progress=False)))
    assert s.failed == 1 and s.reasons["EchoError"] == 1
    rec = store.get("episode", "JPN/t-001/s0")
    assert rec.status == "failed" and rec.error.startswith("EchoError: turn 0:") and "echo_prompt" in rec.error
    assert rec.data["rejected"] == {"echo_prompt": 3 * 2}  # structured_attempts x (model_retries + 1)
    assert stored_turns(store, "JPN/t-001/s0") == []


def test_planted_echo_on_the_free_text_path_is_rejected_and_a_good_answer_kept(run_dir):
    first = "Good evening! Could we talk about the noise for a moment?"
    cfg = RoleplayConfig(samples=1, max_turns=2, progress=False, turn_format="freetext")
    # the reply of attempt k of turn t (attempts after the first are asked at once: the answer depends on
    # the attempt's seed, not on the order the calls arrive in)
    answers = {0: [HELP, first, "unused"], 1: [HELP, first, "Of course, I will play more quietly after nine."]}

    def reply(messages: Any, params: Any) -> str:
        turn = 1 if any(first in str(m.get("content", "")) for m in messages) else 0
        base = cfg.turn_seed("JPN/t-001/s0", turn)
        return answers[turn][(params.seed - base) // 7919]

    llm = MockLLM(reply, option_probs=_speak_only)
    with RunStore(run_dir) as store:
        seed_store(store, ["JPN/t-001"])
        s = asyncio.run(run_roleplay(store, llm, cfg))
        turns = stored_turns(store, "JPN/t-001/s0")
        rec = store.get("episode", "JPN/t-001/s0")
        assert s.ok == 1 and len(turns) == 2 and all(t.decoding == "freetext" for t in turns)
        # turn 1 repeats turn 0 verbatim once: also rejected
        assert rec.data["rejected"] == {"echo_prompt": 2, "echo_repeat": 1}
        assert all(HELP not in t.argument for t in turns)
        q = dialogue_quality(store)["total"]
        assert q["echo_turns"] == 0 and q["content_turns"] == 2 and q["words_per_turn"] > 8


def test_quality_figures_on_stored_turns_of_an_older_run(store):
    """Turns stored without the checks (structured decoding of an older run) are measured as they are."""
    seed_store(store, ["JPN/t-001"])
    sv = view(parse_scenario(SCENARIOS["JPN/t-001"]))
    args = ["Please keep the music down after ten.", "is the exact words the person says", "doorphone", "Doorphone"]
    for i, a in enumerate(args):
        t = {"idx": i, "agent": i % 2, "speaker": sv.characters[i % 2].name, "action_type": "speak", "argument": a,
             "model": "m", "seed": i}  # fmt: skip
        store.put("turn", f"JPN/t-001/s0/t{i:03d}", t, parent="JPN/t-001/s0")
    store.put("episode", "JPN/t-001/s0", {"culture": "JPN", "end_reason": "turn_limit", "n_turns": 4})
    q = dialogue_quality(store)
    assert q["total"]["content_turns"] == 4 and q["total"]["echo_turns"] == 2  # the help text and "Doorphone"
    assert q["cultures"]["JPN"]["words_per_turn"] == pytest.approx((7 + 7 + 1 + 1) / 4)
    assert q["total"]["distinct_2"] == pytest.approx(1.0)  # 6 + 6 bigrams, all different
    assert q["total"]["keep_rate"] is None and q["total"]["names_share"] is None  # not judged; seed characters


def test_a_near_copy_of_an_earlier_argument_is_an_echo():
    before = "I'm really intrigued by the project. I'm sure it will make a difference in your industry."
    near = "Well, I'm really intrigued by the project. I'm sure it will make a difference in your whole industry."
    problem = echo_problem(near, previous=["Hello.", before])
    assert problem is not None and problem.startswith("echo_near: ")
    # sharing a phrase or two is dialogue, not a copy
    reply = "A difference in your industry? Tell me what the project costs and when it starts."
    assert echo_problem(reply, previous=[before]) is None
    assert echo_problem("Yes, the project.", previous=[before]) is None  # too short to have 4-word runs in common


def test_tidy_cuts_loops_drops_sentences_said_before_and_a_cut_off_end():
    looped = "Majd, I'm just happy to share it with you. I'm just happy to share it with you. Really."
    assert tidy_argument(looped) == ("Majd, I'm just happy to share it with you.", ["loop"])
    # a sentence that mostly re-says an earlier one of the same argument starts a loop too
    near = "He is wearing a black leather jacket. Now he is wearing a black leather jacket!"
    assert tidy_argument(near) == ("He is wearing a black leather jacket.", ["loop"])
    partner = "And that was the thing I was looking at. What I want to know is the price."
    copied = "And that was the thing I was looking at. How much is it, then?"
    assert tidy_argument(copied, [partner]) == ("How much is it, then?", ["said_before"])
    cut = "Good evening, Mr. Tanaka. I wanted to ask whether we could"
    assert tidy_argument(cut, cut=True) == ("Good evening, Mr. Tanaka.", ["cut_off"])
    assert tidy_argument(cut, cut=False) == (cut, [])  # ended by the stop string: nothing was cut
    assert tidy_argument("I wanted to ask whether we could", cut=True) == ("I wanted to ask whether we could", [])
    # CJK sentence ends need no space; a reply that is only sentences said before stays for the echo checks
    assert tidy_argument("\u3053\u3093\u306b\u3061\u306f\u3002\u3053\u3093\u306b\u3061\u306f\u3002") == (
        "\u3053\u3093\u306b\u3061\u306f\u3002",
        ["loop"],
    )
    assert tidy_argument("What project?", ["What project?"]) == ("What project?", [])


def test_tidied_arguments_are_stored_and_counted_per_episode(run_dir):
    answers = iter(
        [
            "Good evening! Could we talk about the noise for a moment? Could we talk about the noise for a moment?",
            "Good evening! Of course, I will play more quietly after nine.",
        ]
    )
    llm = MockLLM(lambda _m, _p: next(answers), option_probs=_speak_only)
    with RunStore(run_dir) as store:
        seed_store(store, ["JPN/t-001"])
        cfg = RoleplayConfig(samples=1, max_turns=2, progress=False, turn_format="freetext")
        assert asyncio.run(run_roleplay(store, llm, cfg)).ok == 1
        turns = stored_turns(store, "JPN/t-001/s0")
        assert [t.argument for t in turns] == [
            "Good evening! Could we talk about the noise for a moment?",
            "Of course, I will play more quietly after nine.",
        ]
        assert store.get("episode", "JPN/t-001/s0").data["tidied"] == {"loop": 1, "said_before": 1}
