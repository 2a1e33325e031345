"""Multi-task training data (CLCA section 5) from a run database.

Task 1 (dialogue imitation): every kept dialogue twice, once from each participant's side.
Task 2 (intention understanding): setting + conversation up to a turn -> the speaker's intention
and its cultural relevance. Variants: full, dialogue_only, intent_only, no_filter, control,
and the survey_* control sets (survey answers in the evaluation's own prompt format).
"""

from ..records import DialogueView
from ._build import build_dataset, collect_rows, dataset_stats, load_info, read_jsonl
from ._config import SURVEY_VARIANTS, VARIANTS, DatasetConfig, DatasetInfo
from ._export import to_sharegpt
from ._mix import dedup, split_by_scenario
from ._rows import dialogue_rows, intent_rows, load_control
from ._source import iter_dialogues
from ._survey_rows import SURVEY_TASK, survey_rows

__all__ = [
    "SURVEY_TASK",
    "SURVEY_VARIANTS",
    "VARIANTS",
    "DatasetConfig",
    "DatasetInfo",
    "DialogueView",
    "build_dataset",
    "collect_rows",
    "dataset_stats",
    "dedup",
    "dialogue_rows",
    "intent_rows",
    "iter_dialogues",
    "load_control",
    "load_info",
    "read_jsonl",
    "split_by_scenario",
    "survey_rows",
    "to_sharegpt",
]
