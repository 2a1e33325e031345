"""Running one stage from its command: the run directory's store, the models, the summary line, and exit
status 1 when every item failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from ..runner import RunSummary


def run_stage_command(
    run_dir: Path,
    models: list[str],
    work: Callable[[Any, list[Any]], Awaitable[RunSummary]],
    what: str,
    inputs: tuple[Any, ...] | None = None,
) -> None:
    """Open the store (with `inputs`: binding the content of those files, a changed one is refused), load the
    models, run `work(store, llms)`, print its summary; exit 1 when nothing succeeded."""
    from .._inputs import input_hashes
    from ..llm import load_model
    from ..store import RunStore

    async def main() -> RunSummary:
        llms: list[Any] = []
        with RunStore(run_dir) as store:  # the run directory's lock first: a second writer stops before loading
            if inputs is not None:
                store.bind_inputs(input_hashes({"inputs": [str(i) for i in inputs if i is not None]}))
            try:
                for spec in models:
                    llms.append(load_model(spec))
                return await work(store, llms)
            finally:
                for llm in llms:
                    await llm.aclose()

    summary = asyncio.run(main())
    typer.echo(summary.line(what))
    if summary.failed and not summary.ok and not summary.skipped:
        if summary.first_error:
            typer.echo(f"error: every item failed; first failure: {summary.first_error}", err=True)
        raise typer.Exit(1)
