"""The in-process engine: dynamic batching, the memory budget, and (torch, loaded on first use) the
loaded model with its decoding loop, KV caches, radix prefix cache and sampler."""

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ._batcher import Batcher, BatchStats
from ._budget import MemoryBudget, announce, plan_budget
from ._rows import EngineStats, GenOut, GenRow, ScoreJob

if TYPE_CHECKING:
    from ._engine import Engine

__getattr__ = lazy_names(__name__, {"._engine": ("Engine",)})  # torch only when a model loads

__all__ = [
    "BatchStats",
    "Batcher",
    "Engine",
    "EngineStats",
    "GenOut",
    "GenRow",
    "MemoryBudget",
    "ScoreJob",
    "announce",
    "plan_budget",
]
