"""Agent prompts: each side sees both public profiles, its own goal and secret, never the other's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..llm import Message
from ..prompts import render
from ..records import ScenarioView
from ._models import Turn


def turn_dicts(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns as plain dicts for the transcript template."""
    return [
        {"idx": t.idx, "speaker": t.speaker, "action_type": t.action_type.value, "argument": t.argument} for t in turns
    ]


def agent_system_prompt(sv: ScenarioView, culture_profile: str) -> str:
    """What both sides share: the setting, the relationship, both public profiles, the action types.

    The same for both sides, so a conversation's prompts share it as a prefix; an in-process backend or a
    prefix-caching server computes it once for both sides.
    """
    return render(
        "roleplay_agent_system",
        people=[c.public() for c in sv.characters],
        setting=sv.setting,
        relationship=sv.relationship,
        culture_name=sv.culture_name,
        culture_profile=culture_profile,
    )


def agent_messages(
    sv: ScenarioView, side: int, turns: Sequence[Turn], culture_profile: str, ask: str = "structured"
) -> list[Message]:
    """The full request for side's next action: the shared system prompt, what only this side knows (its
    secret and goal, never the other's), the whole history so far, then the question.

    The private part comes before the transcript so that each side's prompt extends that side's previous
    one (shared system part, private part, transcript): only the new turns and the question are computed
    per turn by a prefix cache, not the private part after a changed transcript.

    ask: "structured" (the whole action as JSON), "type" (which action type, for option scoring), or an
    action type ("speak", "non-verbal communication", "action": the free-text argument of that type).
    """
    me, partner = sv.characters[side], sv.characters[1 - side]
    user = render(
        "roleplay_agent_turn",
        turns=turn_dicts(turns),
        turn_idx=len(turns),
        me=me.__dict__,
        my_goal=sv.goals[side],
        partner_name=partner.name,
        culture_name=sv.culture_name,
        ask=ask,
    )
    return [
        {"role": "system", "content": agent_system_prompt(sv, culture_profile)},
        {"role": "user", "content": user},
    ]


def reply_prefill(name: str, ask: str) -> str:
    """The start of a free-text reply that an in-process model continues: `Name: "` for speech, `Name` else."""
    return render("roleplay_reply_prefill", speaker=name, ask=ask)
