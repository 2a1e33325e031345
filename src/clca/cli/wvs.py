"""CLI: `clca eval`, `clca wvs aggregate`, `clca wvs items`, `clca wvs compare`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import typer

from ..errors import ConfigError

wvs_app = typer.Typer(
    help="World Values Survey data: reference tables, items, model comparisons.", no_args_is_help=True
)


def _alias(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", model).strip("_") or "model"


def eval_cmd(
    model: str = typer.Option("embedded", "--model", help="Model string (embedded, hf:PATH, openai:MODEL@URL, ...)."),
    alias: str = typer.Option(None, "--alias", help="Name of this model in the run (default: from --model)."),
    culture: list[str] = typer.Option(..., "--culture", help="Target culture (name or ISO3); repeatable."),
    compare: list[str] = typer.Option([], "--compare", help="Other cultures to evaluate and compare; repeatable."),
    survey: list[Path] = typer.Option(
        [], "--survey", help="WVS respondent file(s): .csv (numeric or labelled export), .sav, .dta, .rds."
    ),
    labels: Path = typer.Option(
        None, "--labels", help="Value labels for a numeric CSV (.sav/.dta of the release, JSON)."
    ),
    persona_sampling: str = typer.Option(
        "weighted", "--persona-sampling", help="weighted (by W_WEIGHT, default) | uniform: how respondents are drawn."
    ),
    reference: Path = typer.Option(
        None, "--reference", help="Reference table JSON, e.g. from `clca wvs aggregate` (default: the bundled one)."
    ),
    opinions: Path = typer.Option(
        None, "--opinions", help="GlobalOpinionQA file (JSONL/JSON/CSV/Parquet): its questions and country shares."
    ),
    unsure: str = typer.Option(
        "keep", "--unsure", help="GlobalOpinionQA 'Don't know'/'Refused' options: keep | drop (and renormalise)."
    ),
    questionnaire: Path = typer.Option(None, "--questionnaire", help="Questionnaire YAML/JSON (default: bundled)."),
    personas: int = typer.Option(20, "--personas", min=1, help="Personas per culture (paper: 1000)."),
    style: list[str] = typer.Option(["persona"], "--style", help="persona | cultural | anthropological | none."),
    mode: str = typer.Option(None, "--mode", help="logprobs (default when the backend scores options) | generate."),
    samples: int = typer.Option(20, "--samples", min=1, help="Sampled answers per prompt (generate mode)."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Sampling temperature (generate mode)."),
    variant: list[str] = typer.Option(["base"], "--variant", help="base | perm<k> (shuffled options) | para."),
    item: list[str] = typer.Option([], "--item", help="Only these item ids (repeatable)."),
    epsilon: float = typer.Option(1e-3, "--epsilon", min=0.0, help="KL smoothing of zero survey shares."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples over questions."),
    seed: int = typer.Option(0, "--seed"),
    theme: bool = typer.Option(False, "--by-theme", help="Also print one table per theme."),
    run_dir: Path = typer.Option(Path("runs/wvs-eval"), "--run-dir", help="Run directory (answers are cached)."),
    concurrency: int = typer.Option(32, "--concurrency", min=1),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Ask a model the WVS items as personas of each culture; print KL, JSD, W1, accuracy with 95% intervals."""
    from ..errors import ClcaError
    from ..llm import load_model
    from ..store import DB_NAME, RunStore
    from ..wvs import EvalConfig, evaluate, format_table

    for s in style:
        if s not in ("persona", "cultural", "anthropological", "none"):
            raise ConfigError(f"--style: {s!r} is not one of persona, cultural, anthropological, none")
    if mode not in (None, "logprobs", "generate"):
        raise ConfigError(f"--mode: {mode!r} is not one of logprobs, generate")
    if persona_sampling not in ("weighted", "uniform"):
        raise ConfigError(f"--persona-sampling: {persona_sampling!r} is not one of weighted, uniform")
    if unsure not in ("keep", "drop"):
        raise ConfigError(f"--unsure: {unsure!r} is not one of keep, drop")
    name = alias or _alias(model)

    async def main() -> str:
        llm = load_model(model)
        try:
            chosen = mode or ("logprobs" if await _can_score(llm) else "generate")
            cfg = EvalConfig(
                cultures=culture, compare=compare, styles=style, mode=chosen, personas=personas, samples=samples,
                temperature=temperature, epsilon=epsilon, bootstrap=bootstrap, seed=seed, variants=variant,
                items=item or None, survey=[str(s) for s in survey],
                survey_labels=str(labels) if labels else None, persona_sampling=persona_sampling,
                reference=str(reference) if reference else None,
                opinions=str(opinions) if opinions else None, opinion_unsure=unsure,
                questionnaire=str(questionnaire) if questionnaire else None, concurrency=concurrency,
                progress=not quiet,
            )  # fmt: skip
            fresh = not (run_dir / DB_NAME).exists()
            try:
                with RunStore(run_dir) as store:
                    result = await evaluate(store, llm, name, cfg)
            except ClcaError:
                if fresh:  # bad input found before any answer: leave no empty run behind
                    _remove_if_empty(run_dir)
                raise
        finally:
            await llm.aclose()
        text = format_table(result)
        if theme:
            for t in sorted({r.theme for r in result.rows if r.theme != "all"}):
                text += format_table(result, theme=t, variant="base")
        return text + result.summary + f"\nmode: {chosen}; answers and metrics stored in {run_dir}\n"

    typer.echo(asyncio.run(main()), nl=False)


def _remove_if_empty(run_dir: Path) -> None:
    """Delete a run database (and its folder, if then empty) that holds no artifact."""
    import sqlite3

    from ..store import DB_NAME

    db = run_dir / DB_NAME
    con = sqlite3.connect(db)
    try:
        n = con.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0]
    finally:
        con.close()
    if n:
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    from ..runlock import LOCK_NAME

    (run_dir / LOCK_NAME).unlink(missing_ok=True)
    if not any(run_dir.iterdir()):
        run_dir.rmdir()


async def _can_score(llm: object) -> bool:
    """True when the backend answers option-scoring requests (in-process models, servers with logprobs)."""
    from ..errors import UnsupportedError

    try:
        await llm.score_options([{"role": "user", "content": "Pick 1 or 2."}], ["1", "2"])  # type: ignore[attr-defined]
    except (UnsupportedError, NotImplementedError):
        return False
    return True


@wvs_app.command("aggregate")
def aggregate_cmd(
    files: list[Path] = typer.Argument(
        ..., help="WVS respondent files: the official release (.csv, .sav, .dta, .rds) or the labelled export."
    ),
    out: Path = typer.Option(..., "--out", help="Reference table to write (JSON)."),
    questionnaire: Path = typer.Option(None, "--questionnaire", help="Questionnaire (default: the bundled one)."),
    labels: Path = typer.Option(
        None, "--labels", help="Value labels for a numeric CSV (.sav/.dta of the release, JSON)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Answer shares (and demographic marginals) of every country in the files, with source and n: figures only.

    The files are streamed (only the needed columns, in chunks where the format allows), so memory stays
    bounded for the full WVS-7 file. Pass the result to `clca eval --reference OUT` (or `eval: reference:`).
    """
    from .._files import check_output_file
    from ..wvs import aggregate, default_questionnaire, load_questionnaire

    check_output_file(out)  # before reading a large file, not after
    q = load_questionnaire(questionnaire) if questionnaire else default_questionnaire()
    table = aggregate(files, q, labels=labels, progress=not quiet)
    table.save(out)
    for iso, c in table.countries.items():
        n = max((d.n for d in c.items.values()), default=0)
        typer.echo(f"{iso} {c.name}: {len(c.items)} items, up to n={n}, {len(c.marginals)} demographic marginals")
    typer.echo(f"{len(table.countries)} countries; {table.dropped_rows} rows without a country (summary rows) skipped")
    if table.unlabelled_regions:
        typer.echo(
            f"note: {table.unlabelled_regions} region codes have no value label, so regions are left out; "
            "give --labels (a .sav/.dta of the same release, or JSON variable -> {code: label})"
        )
    typer.echo(f"wrote {out}")


@wvs_app.command("items")
def items_cmd(
    questionnaire: Path = typer.Option(None, "--questionnaire", help="Questionnaire (default: the bundled one)."),
    language: str = typer.Option("en", "--language", help="Language of the bundled questionnaire."),
) -> None:
    """List the survey items: id, theme, kind, scale length and question."""
    from ..wvs import default_questionnaire, load_questionnaire

    q = load_questionnaire(questionnaire) if questionnaire else default_questionnaire(language)
    for it in q:
        typer.echo(f"{it.id}\t{it.theme}\t{it.kind}\t{it.scale_length}\t{it.text}")
    typer.echo(f"{len(q)} items")


@wvs_app.command("compare")
def compare_cmd(
    base: str = typer.Option(..., "--base", help="Alias of the base model in the run."),
    adapted: str = typer.Option(..., "--adapted", help="Alias of the adapted model in the run."),
    culture: str = typer.Option(..., "--culture", help="Target culture."),
    reference: str = typer.Option("United States", "--reference", help="Culture to check a move away from."),
    run_dir: Path = typer.Option(Path("runs/wvs-eval"), "--run-dir"),
) -> None:
    """Did adaptation move the model towards the target culture, and away from the reference (default US)?"""
    from ..store import RunStore
    from ..wvs import compare_models, format_shifts

    if not (run_dir / "run.sqlite").exists():
        raise ConfigError(f"{run_dir}: no run database; run `clca eval --run-dir {run_dir}` for both models first")
    with RunStore(run_dir, lock=False) as store:
        shifts = compare_models(store, base, adapted, culture, reference=reference)
    typer.echo(format_shifts(shifts, base, adapted), nl=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("eval")(eval_cmd)
    app.add_typer(wvs_app, name="wvs")
