"""DatasetConfig (what to build) and DatasetInfo (what was built)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._bounds import seed_field

Variant = Literal[
    "full",
    "dialogue_only",
    "intent_only",
    "no_filter",
    "full_collab",
    "collab_only",
    "control",
    "survey_direct",
    "survey_transfer",
    "survey_other",
    "survey_shuffled",
    "survey_uniform",
]
Task = Literal["dialogue", "intent", "collaborative", "control", "survey"]
#: control training sets built from the evaluation's survey data (clca.dataset._survey_rows), no dialogues
SURVEY_VARIANTS = ("survey_direct", "survey_transfer", "survey_other", "survey_shuffled", "survey_uniform")

VARIANTS: dict[str, str] = {
    "full": "both tasks from judge-kept dialogues (the CLCA recipe)",
    "dialogue_only": "task 1 only (dialogue imitation) from judge-kept dialogues",
    "intent_only": "task 2 only (intention understanding) from judge-kept dialogues",
    "no_filter": "both tasks from every finished dialogue, judge-rejected ones included",
    "full_collab": "both tasks plus task 3 (collaborative learning: the characters' reflections) from "
    "judge-kept dialogues; needs reflect.enabled",
    "collab_only": "task 3 only (collaborative learning) from judge-kept dialogues; needs reflect.enabled",
    "control": "only user-supplied generic conversations (--control FILE, messages JSONL)",
    "survey_direct": "the target culture's survey answers to the evaluation items, in the evaluation's "
    "prompt format (positive control)",
    "survey_transfer": "the target's survey answers to questionnaire items that are not evaluation items",
    "survey_other": "control_culture's survey answers to the evaluation items (negative control)",
    "survey_shuffled": "survey_direct's answers permuted across items (same marginals, no item-answer link)",
    "survey_uniform": "survey_direct's prompts with uniformly random options (format-only control)",
}


class DatasetConfig(BaseModel):
    """Settings of `build_dataset` / `clca dataset build`."""

    model_config = ConfigDict(extra="forbid")

    variant: Variant = Field(
        "full", description="ablation variant: " + "; ".join(f"{k}: {v}" for k, v in VARIANTS.items())
    )
    judge_rule: dict[str, Any] | None = Field(
        None, description="clca.judge.DiscardRule fields for kept_episodes (None: the judge's default rule)"
    )
    culture: str | None = Field(None, description="only dialogues of this culture (ISO3)")
    culture_context: Literal["none", "country"] = Field(
        "country", description="culture context in task-1 system prompts: none, or the country named"
    )
    culture_names: dict[str, str] = Field(
        default_factory=dict, description="ISO3 -> name used in prompts (built-in names for the paper's cultures)"
    )
    assistant_first: Literal["insert_user", "keep"] = Field(
        "insert_user",
        description="when a side opens the dialogue: insert a short user cue before its first turn "
        "(portable to templates that require user-first), or keep system->assistant",
    )
    collab_rows: Literal["statement", "continue", "both"] = Field(
        "both",
        description="task 3 rows: statement (transcript + talk -> the agreed norms), continue (the talk from "
        "each side), or both",
    )
    intent_include_generic: bool = Field(True, description="task 2 rows also for turns labelled generic")
    control_path: Path | None = Field(None, description="messages JSONL of generic conversations (variant control)")
    control_culture: str | None = Field(
        None, description="survey_other: the culture whose survey answers are trained on (name or ISO3)"
    )
    control_rows: int = Field(192, ge=1, description="survey_* variants: rows (spread evenly over the items)")
    control_personas: int = Field(
        48, ge=1, description="survey_* variants from the reference table: training personas drawn (disjoint "
        "from the evaluation's); with a respondent file the culture's other respondents are used"
    )  # fmt: skip
    weights: dict[str, float] = Field(
        default_factory=lambda: {"dialogue": 1.0, "intent": 1.0},
        description="per-task row multipliers: 1 = every row once, 0.5 = half (seeded sample), 2 = twice",
    )
    order: Literal["shuffle", "concat", "interleave"] = Field(
        "shuffle",
        description="row order: seeded shuffle; concat (task by task); interleave (next task drawn with "
        "probability proportional to its weight among tasks with rows left)",
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of SCENARIOS held out for validation")
    dedup: bool = Field(
        True, description="drop rows whose messages are identical to an earlier row (survey control rows are all kept)"
    )
    seed: int = seed_field()
    tokenizer: str | None = Field(
        "embedded", description="model string whose tokenizer measures token lengths (None: skip stats)"
    )

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        from ..errors import ConfigError

        if self.variant == "survey_other" and not self.control_culture:
            raise ConfigError("variant 'survey_other' needs control_culture (the other culture, e.g. United States)")
        if self.variant == "control" and self.control_path is None:
            raise ConfigError("variant 'control' needs control_path (--control FILE): generic conversations JSONL")
        for k, w in self.weights.items():
            if k not in ("dialogue", "intent", "collaborative", "control", "survey") or w < 0:
                raise ConfigError(
                    f"weights: unknown task {k!r} or negative weight {w} (tasks: dialogue, intent, collaborative)"
                )
        return self

    def tasks(self) -> tuple[str, ...]:
        return {
            "full": ("dialogue", "intent"),
            "no_filter": ("dialogue", "intent"),
            "dialogue_only": ("dialogue",),
            "intent_only": ("intent",),
            "full_collab": ("dialogue", "intent", "collaborative"),
            "collab_only": ("collaborative",),
            "control": ("control",),
        }.get(self.variant, ("survey",))


class DatasetInfo(BaseModel):
    """Written as info.json next to the exports; returned by build_dataset."""

    out_dir: Path
    config: dict[str, Any]
    rows: dict[str, int] = Field(description="rows per split")
    rows_by_task: dict[str, dict[str, int]] = Field(description="split -> task -> rows")
    scenarios: dict[str, list[str]] = Field(description="split -> scenario keys")
    episodes_read: int = 0
    episodes_used: int = 0
    duplicates_removed: int = 0
    skipped: dict[str, int] = Field(default_factory=dict, description="reason -> count of items left out")
    token_stats: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
