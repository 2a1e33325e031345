"""Agent prompts: each side sees both public profiles, its own goal and secret, never the other's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..llm import Message
from ..prompts import render
from ._models import Turn
from ._view import ScenarioView


def turn_dicts(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns as plain dicts for the transcript template."""
    return [
        {"idx": t.idx, "speaker": t.speaker, "action_type": t.action_type.value, "argument": t.argument} for t in turns
    ]


def agent_system_prompt(sv: ScenarioView, side: int, culture_profile: str) -> str:
    me, partner = sv.characters[side], sv.characters[1 - side]
    return render(
        "roleplay_agent_system",
        me=me.__dict__,
        partner=partner.public(),
        setting=sv.setting,
        relationship=sv.relationship,
        my_goal=sv.goals[side],
        culture_name=sv.culture_name,
        culture_profile=culture_profile,
    )


def agent_messages(sv: ScenarioView, side: int, turns: Sequence[Turn], culture_profile: str) -> list[Message]:
    """The full request for side's next action: system prompt + the whole history so far."""
    user = render(
        "roleplay_agent_turn",
        turns=turn_dicts(turns),
        turn_idx=len(turns),
        me_name=sv.characters[side].name,
    )
    return [
        {"role": "system", "content": agent_system_prompt(sv, side, culture_profile)},
        {"role": "user", "content": user},
    ]
