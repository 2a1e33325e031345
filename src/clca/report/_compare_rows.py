"""The rows of a comparison (`clca.report._compare`): a run, one model row per culture, its answer shares.

Kept apart from `Comparison` so that the modules computing on rows (`_paired`, `_specificity`, `_dose`)
import them without importing the comparison that holds their results (no import circle).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from ._metrics import Estimate

#: a `clca.report._compare.Comparison` where the row modules take one (annotated loosely: importing it here
#: would close a circle through the results it holds)
ComparisonData = Any
BASE_GROUP = "base model"
EVAL_ONLY_GROUP = "evaluated models (no run config)"


class RunInfo(BaseModel):
    label: str = Field(description="the run's short name in tables (its directory name, made unique)")
    path: str
    name: str | None = Field(None, description="the config's name")
    student: str | None = Field(None, description="models.student of the run config")
    dataset_variant: str | None = Field(
        None, description="dataset.variant of the run config (the ablation); None for a run without one (clca eval)"
    )
    max_steps: int | None = Field(None, description="train.max_steps of the run config (when > 0)")
    dose_key: str | None = Field(None, description="hash of the run config without train.max_steps: a dose series")
    seed: int | None = None
    targets: list[str] = Field(default_factory=list, description="the run's target cultures (ISO alpha-3)")
    setup: dict[str, Any] = Field(default_factory=dict, description="what must agree for runs to be compared")
    differs: list[str] = Field(default_factory=list, description="setup keys that differ from the first run")
    environment: dict[str, Any] | None = Field(None, description="the run's recorded environment (clca.environment)")
    environment_differs: list[str] = Field(
        default_factory=list, description="'entry: first run's value → this run's' for each environment difference"
    )


class CompareRow(BaseModel):
    run: str
    model: str = Field(description="model alias in the run (base, adapted, ...)")
    model_string: str | None = Field(None, description="the model the alias stands for")
    style: str
    culture: str
    role: str
    group: str = Field(description=f"'{BASE_GROUP}', 'dataset: <variant>' (the ablation) or '{EVAL_ONLY_GROUP}'")
    dataset_variant: str | None
    rank: int | None = Field(None, description="rank of the culture among all survey cultures by 1-JSD (1 = closest)")
    rank_of: int | None = Field(None, description="cultures ranked")
    values: dict[str, Estimate] = Field(default_factory=dict)
    marked: bool = Field(False, description="its run's evaluation setup differs from the first run's")
    env_marked: bool = Field(False, description="its run's environment differs from the first run's")
    per_item: dict[str, dict[str, float]] = Field(default_factory=dict, exclude=True)
    per_persona_accuracy: dict[str, float] = Field(default_factory=dict, exclude=True)

    @property
    def ident(self) -> str:
        return f"{self.run}:{self.model}:{self.style}"


class DistributionRow(BaseModel):
    run: str
    model: str
    style: str
    culture: str
    item: str
    option: str
    model_share: float
    survey_share: float


#: run config keys that do not change what a run's student learns (a dose series differs only in train.max_steps)
DOSE_IGNORED = ("name", "run_dir", "reuse_from", "continue_from", "cache")


def dose_config(cfg: dict[str, Any]) -> tuple[int | None, str | None]:
    """(train.max_steps when > 0, hash of the config without it and without names and paths)."""
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    steps = train.get("max_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        return None, None
    rest = {k: v for k, v in cfg.items() if k not in DOSE_IGNORED}
    rest["train"] = {k: v for k, v in train.items() if k not in ("max_steps", "progress")}
    text = json.dumps(rest, sort_keys=True, default=str)
    return steps, hashlib.sha256(text.encode()).hexdigest()[:16]
