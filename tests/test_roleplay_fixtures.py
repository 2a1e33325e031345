"""Scenarios written for these tests (our own words) and scripted agents for fast role-play tests."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from clca.roleplay import parse_scenario
from clca.store import RunStore

SCENARIOS: dict[str, dict[str, Any]] = {
    "JPN/t-001": {
        "setting": "A small office in Osaka on a Friday evening; the team is packing up after a long week.",
        "relationship": "acquaintance",
        "culture": "JPN",
        "provenance": {"kind": "custom", "id": "t-001", "source": "clca-tests"},
        "characters": [
            {
                "first_name": "Haruto",
                "last_name": "Mori",
                "age": 29,
                "gender": "man",
                "pronouns": "he/him",
                "occupation": "junior engineer",
                "public_info": "Joined the team a year ago and works late often.",
                "personality": "careful, quiet, eager to be useful",
                "secret": "He already accepted a job offer at a rival company.",
                "goal": "Ask the section chief for a week of leave in a busy month without causing offence.",
            },
            {
                "first_name": "Keiko",
                "last_name": "Sato",
                "age": 52,
                "gender": "woman",
                "pronouns": "she/her",
                "occupation": "section chief",
                "public_info": "Has led the section for ten years.",
                "personality": "strict but fair, values loyalty",
                "secret": "Her section may be merged into another department next spring.",
                "goal": "Make sure the project deadline next month is met without anyone taking time off.",
            },
        ],
    },
    "MEX/t-002": {
        "setting": "A shared courtyard of two neighbouring houses in Puebla on a Sunday morning.",
        "relationship": "friend",
        "culture": "MEX",
        "provenance": {"kind": "custom", "id": "t-002", "source": "clca-tests"},
        "characters": [
            {
                "first_name": "Lucia",
                "last_name": "Ramos",
                "age": 41,
                "gender": "woman",
                "pronouns": "she/her",
                "occupation": "school teacher",
                "public_info": "Organises the street's yearly celebration.",
                "personality": "warm, talkative, proud of her family",
                "secret": "She borrowed money from her brother to pay for the party.",
                "goal": "Convince her neighbour to lend the courtyard for her daughter's fifteenth birthday party.",
            },
            {
                "first_name": "Andres",
                "last_name": "Vega",
                "age": 67,
                "gender": "man",
                "pronouns": "he/him",
                "occupation": "retired carpenter",
                "public_info": "Lives alone and tends a large garden.",
                "personality": "gentle, set in his ways",
                "secret": "His doctor told him to avoid noise and late nights.",
                "goal": "Keep his garden safe while staying on good terms with his neighbour.",
            },
        ],
    },
    "DEU/t-003": {
        "setting": "The kitchen of a shared flat in Leipzig late on a weekday evening.",
        "relationship": "know_by_name",
        "culture": "DEU",
        "provenance": {"kind": "custom", "id": "t-003", "source": "clca-tests"},
        "characters": [
            {
                "first_name": "Jonas",
                "last_name": "Weber",
                "age": 24,
                "gender": "man",
                "pronouns": "he/him",
                "occupation": "physics student",
                "public_info": "Moved into the flat two months ago.",
                "personality": "direct, organised",
                "secret": "He has an exam at eight tomorrow and has not studied.",
                "goal": "Get his flatmate to keep the music down after ten.",
            },
            {
                "first_name": "Mia",
                "last_name": "Schulz",
                "age": 26,
                "gender": "woman",
                "pronouns": "she/her",
                "occupation": "bartender",
                "public_info": "Works night shifts and sleeps during the day.",
                "personality": "easygoing, sociable",
                "secret": "She is planning to move out next month.",
                "goal": "Keep practising guitar in the evening, the only time she is free.",
            },
        ],
    },
}


def seed_store(store: RunStore, keys: Sequence[str] | None = None) -> list[str]:
    """Store the test scenarios as kind 'scenario' (validated by the real Scenario model)."""
    out = []
    for key, data in SCENARIOS.items():
        if keys is not None and key not in keys:
            continue
        store.put("scenario", key, parse_scenario(data).model_dump(mode="json"))
        out.append(key)
    return out


_TURN = re.compile(r"It is turn (\d+)\. What does (.+?) do next\?")


def turn_of(messages: Sequence[Any]) -> tuple[int, str]:
    """(turn idx, acting character) of an agent request."""
    m = _TURN.search(messages[1]["content"])  # the agent's request (re-asks are appended after it)
    assert m, "not an agent request"
    return int(m.group(1)), m.group(2)


def action(action_type: str, argument: str = "") -> str:
    return json.dumps({"action_type": action_type, "argument": argument})


def speaker_script(plan: dict[int, str] | None = None, default: str | None = None):
    """A MockLLM responder: turn idx -> JSON action (plan), else speak a line naming the speaker and turn."""

    def respond(messages: Sequence[Any], _params: Any) -> str:
        idx, who = turn_of(messages)
        if plan and idx in plan:
            return plan[idx]
        return default if default is not None else action("speak", f"{who} says line {idx}.")

    return respond
