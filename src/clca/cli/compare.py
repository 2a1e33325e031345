"""`clca compare RUN_DIR...`: several runs side by side (HTML + Markdown report, tidy tables, LaTeX, figures)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach `clca compare` to the root app."""

    @app.command("compare")
    def compare(
        run_dirs: list[Path] = typer.Argument(..., help="run directories (each holds run.sqlite)"),
        out: Path = typer.Option(Path("compare"), "--out", help="output folder"),
        allow_different: bool = typer.Option(
            False, "--allow-different", help="compare runs whose evaluation setup differs (their rows are marked)"
        ),
        baseline: str | None = typer.Option(
            None, "--baseline", help="also compare every row with this one: RUN:MODEL:STYLE (e.g. demo:base:persona)"
        ),
        culture: str | None = typer.Option(
            None, "--culture", help="culture of the per-question figure (default: the first run's first target)"
        ),
        resamples: int = typer.Option(2000, "--resamples", min=1, help="bootstrap resamples of the paired statistics"),
        seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="seed of the paired bootstrap"),
        no_figures: bool = typer.Option(False, "--no-figures", help="skip the matplotlib figures (faster)"),
        reference_arm: str | None = typer.Option(
            None,
            "--reference-arm",
            help="run (label or directory) whose student every other run's student is also compared with, "
            "specificity included; 'none' for no arm (default: a run of dataset variant survey_uniform or "
            "survey_shuffled, when one is compared)",
        ),
        target: str | None = typer.Option(
            None, "--target", help="target culture of every run (default: each run config's cultures)"
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="replace a non-empty --out folder that clca did not write"
        ),
    ) -> None:
        """Compare runs evaluated alike: per-culture tables with CIs, paired statistics (bootstrap, Wilcoxon,
        Holm, detectable effect), specificity to the target culture, CSV/Parquet, LaTeX tables and figures;
        print the KL headline and, last, the HTML path."""
        from ..report import terminal_lines, write_comparison

        paths = write_comparison(
            [str(p) for p in run_dirs],
            out,
            allow_different=allow_different,
            baseline=baseline,
            culture=culture,
            resamples=resamples,
            seed=seed,
            figures=not no_figures,
            reference_arm=reference_arm,
            target=target,
            overwrite=overwrite,
        )
        if paths.comp is not None:
            for line in terminal_lines(paths.comp):
                typer.echo(line)
        for line in paths.environment_notes:
            typer.echo(line, err=True)
        typer.echo(str(paths.html))
