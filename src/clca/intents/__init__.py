"""Per-turn intentions (with a cultural reason only when the annotator is confident), dialogue
statistics per culture, and the JSONL export of kept dialogues with their verdicts and intentions.
"""

from ._annotate import IntentConfig, annotate_intents, annotation_messages, episode_intentions, selected_episodes
from ._models import IntentAnnotation, Intention
from ._quality import dialogue_quality, quality_line
from ._stats import EXPORT_SCHEMA_VERSION, dialogue_record, dialogue_stats, export_dialogues

__all__ = [
    "EXPORT_SCHEMA_VERSION",
    "IntentAnnotation",
    "IntentConfig",
    "Intention",
    "annotate_intents",
    "annotation_messages",
    "dialogue_quality",
    "dialogue_record",
    "dialogue_stats",
    "episode_intentions",
    "export_dialogues",
    "quality_line",
    "selected_episodes",
]
