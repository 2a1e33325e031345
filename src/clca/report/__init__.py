"""The study report of a run: `clca report RUN_DIR` writes RUN_DIR/report/report.html and summary.md.

`build_summary(store)` computes every number the report shows as a `ReportData`; `render_html` and
`render_markdown` turn it into text; `write_report` does both and writes the files atomically;
`render_terminal_summary` prints the per-stage counts as a rich table. `build_comparison` /
`write_comparison` put several runs side by side (`clca compare`).
"""

from typing import Any

from ._compare import CompareRow, Comparison, PairedStat, SpecificityStat, build_comparison
from ._data import (
    DialogueSample,
    IntentionSummary,
    JudgeSummary,
    ReportData,
    StageCount,
    StageRun,
    build_summary,
    judgement_kept,
)
from ._metrics import Estimate, ModelScores, QuestionShift, SimilarityCell, SimilarityRank, WvsSummary, base_alias
from ._render import ReportPaths, render_html, render_markdown, write_report
from ._terminal import render_terminal_summary
from ._train import DatasetSummary, TrainSummary

__all__ = [
    "CompareRow",
    "Comparison",
    "DatasetSummary",
    "DialogueSample",
    "Estimate",
    "IntentionSummary",
    "JudgeSummary",
    "ModelScores",
    "PairedStat",
    "QuestionShift",
    "ReportData",
    "ReportPaths",
    "SimilarityCell",
    "SimilarityRank",
    "SpecificityStat",
    "StageCount",
    "StageRun",
    "TrainSummary",
    "WvsSummary",
    "base_alias",
    "build_comparison",
    "build_summary",
    "judgement_kept",
    "render_html",
    "render_markdown",
    "render_terminal_summary",
    "terminal_lines",
    "write_comparison",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """`write_comparison` and `terminal_lines` import pandas and matplotlib: loaded on first use, not with
    `clca report`."""
    if name in ("terminal_lines", "write_comparison"):
        from . import _compare_render

        return getattr(_compare_render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
