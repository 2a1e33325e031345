"""Collaborative learning: after role-play, the two characters talk the episode over as peers and agree on
the norm(s) the situation calls for (the third form of cultural learning; docs/collaborative.md)."""

from ._models import AgreedStatement, Endorsement, Reflection, ReflectionTurn, StatementDraft
from ._reflect import (
    ReflectConfig,
    clean_turn,
    load_reflections,
    reflect_episodes,
    reflection_messages,
    reflection_stats,
    selected_episodes,
)

__all__ = [
    "AgreedStatement",
    "Endorsement",
    "ReflectConfig",
    "Reflection",
    "ReflectionTurn",
    "StatementDraft",
    "clean_turn",
    "load_reflections",
    "reflect_episodes",
    "reflection_messages",
    "reflection_stats",
    "selected_episodes",
]
