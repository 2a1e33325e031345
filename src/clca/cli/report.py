"""`clca report RUN_DIR`: the study report of a run (self-contained HTML + Markdown summary)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach `clca report` to the root app."""

    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., help="run directory (holds run.sqlite)"),
        out: Path | None = typer.Option(None, "--out", help="output folder (default: RUN_DIR/report)"),
        samples: int = typer.Option(30, "--samples", min=0, help="dialogues shown in the browsable sample"),
        no_figures: bool = typer.Option(
            False, "--no-figures", help="skip the matplotlib figures (KL per culture, per-question shares): faster"
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="replace a non-empty --out folder that clca did not write"
        ),
    ) -> None:
        """Write report.html (tables, plots, sample dialogues) and summary.md; print the HTML path."""
        from ..report import write_report

        paths = write_report(run_dir, out, samples=samples, figures=not no_figures, overwrite=overwrite)
        typer.echo(str(paths.html))
