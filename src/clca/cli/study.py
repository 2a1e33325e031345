"""`clca study plan|run STUDY.yaml`: the runs of a study (one generation, shared by every run)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Studies: a grid of runs (students x dataset variants ...) sharing one generation.",
        no_args_is_help=True,
    )

    @group.command("plan")
    def plan(study: Path = typer.Argument(..., help="study config (YAML), e.g. configs/paper_study.yaml")) -> None:
        """Validate every run of a study and list them in order (name, run directory, what it reuses)."""
        from ..study import check_study

        for r in check_study(study):
            typer.echo(f"{r.name}\t{r.run_dir}\t" + (f"reuses {r.reuse_from}" if r.reuse_from else "generates"))

    @group.command("run")
    def run(
        study: Path = typer.Argument(..., help="study config (YAML)"),
        only: list[str] = typer.Option([], "--only", help="run only these runs (names from `clca study plan`)"),
        until: str | None = typer.Option(None, "--until", help="stop every run after this stage"),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="retry items that failed earlier"),
    ) -> None:
        """Run every run of a study in order: the first generates, the others reuse its shared stages."""
        import yaml

        from ..study import check_study
        from .pipeline import run_config

        runs = check_study(study)  # every run valid (files, models) before any runs
        names = {r.name for r in runs}
        unknown = [n for n in only if n not in names]
        if unknown:
            from ..errors import ConfigError

            raise ConfigError(f"--only {unknown[0]}: no such run in {study}; runs: {', '.join(sorted(names))}")
        for r in runs:
            if only and r.name not in only:
                continue
            typer.echo(f"== {r.name} ({r.run_dir})", err=True)
            r.run_dir.mkdir(parents=True, exist_ok=True)
            expanded = r.run_dir / "study_run.yaml"  # the exact config of this run, kept beside its results
            expanded.write_text(yaml.safe_dump(r.config, sort_keys=False), encoding="utf-8")
            run_config(expanded, [], until, None, retry_failed)

    app.add_typer(group, name="study")
