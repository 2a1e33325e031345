"""Role-play: two LLM agents act out a culturally adapted scenario, Sotopia agent-mode style.

Each side sees the setting, both public profiles, the relationship, the cultural profile, and only
its own goal and secret. Every turn is stored as it completes; a killed run resumes mid-episode.
"""

from ._models import (
    CONTENT_ACTIONS,
    ActionType,
    AgentAction,
    EndReason,
    Episode,
    RoleplayConfig,
    Turn,
    episode_key,
    no_description,
    split_episode_key,
    turn_key,
)
from ._prompts import agent_messages, agent_system_prompt, turn_dicts
from ._roleplay import end_reason, load_episode, load_scenarios, run_roleplay, stored_turns
from ._view import culture_key, culture_profile, parse_scenario, view

__all__ = [
    "CONTENT_ACTIONS",
    "ActionType",
    "AgentAction",
    "EndReason",
    "Episode",
    "RoleplayConfig",
    "Turn",
    "agent_messages",
    "agent_system_prompt",
    "culture_key",
    "culture_profile",
    "end_reason",
    "episode_key",
    "load_episode",
    "load_scenarios",
    "parse_scenario",
    "run_roleplay",
    "split_episode_key",
    "stored_turns",
    "turn_dicts",
    "turn_key",
    "view",
    "no_description",
]
