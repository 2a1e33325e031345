"""A rich table of per-stage counts for the end of `clca run`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._tables import print_table
from ..records import EPISODE, INTENTION, JUDGEMENT, METRIC, SCENARIO, SURVEY_ANSWER, TURN
from ..store import RunStore
from ._data import ReportData, build_summary

_TITLES = {
    SCENARIO: "scenarios",
    EPISODE: "dialogues",
    TURN: "turns",
    JUDGEMENT: "judgements",
    INTENTION: "intentions",
    SURVEY_ANSWER: "survey answers",
    METRIC: "metrics",
}


def _reasons(reasons: dict[str, int], limit: int = 3) -> str:
    items = list(reasons.items())
    s = "; ".join(f"{r} ({n})" for r, n in items[:limit])
    return s + (f"; +{len(items) - limit} more" if len(items) > limit else "")


def terminal_table(data: ReportData) -> Table:
    table = Table(title=f"clca run: {data.run_dir}", title_justify="left")
    table.add_column("stage")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("notes")
    for kind, st in data.stages.items():
        if st.total == 0:
            continue
        note = _reasons(st.reasons)
        if kind == JUDGEMENT:
            note = f"kept {data.judge.kept}, dropped {data.judge.dropped}" + (f"; {note}" if note else "")
        elif kind == EPISODE and data.quality:
            from ..intents import quality_line

            note = quality_line(data.quality["total"]) + (f"; {note}" if note else "")
        elif kind == INTENTION and data.intentions.cultural_share is not None:
            note = f"cultural {100 * data.intentions.cultural_share:.1f}%" + (f"; {note}" if note else "")
        # Text() keeps model-written reasons from being read as rich markup
        table.add_row(_TITLES.get(kind, kind), str(st.ok), str(st.failed), Text(note))
    return table


def render_terminal_summary(store: RunStore | ReportData, console: Console | None = None) -> ReportData:
    """Print the per-stage count table; returns the summary it printed."""
    data = store if isinstance(store, ReportData) else build_summary(store, samples=0)
    print_table(terminal_table(data), console)
    return data
