"""Terminal tables that never cut a header or a cell: when a table is wider than the output (a terminal, or
80 columns when the output is piped), its columns fold onto further lines instead of ending in '…'."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def folding(table: Table) -> Table:
    """The table with every column set to fold (wrap) text that does not fit, headers included."""
    for col in table.columns:
        col.overflow = "fold"
        col.no_wrap = False
    return table


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table on the console (default: stdout at the terminal's width, 80 columns when piped),
    folding what does not fit."""
    (console or Console()).print(folding(table))
