"""CLI: `clca eval`, `clca wvs aggregate`, `clca wvs items`, `clca wvs compare`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..wvs import EvalConfig
from ._options import UNSET, field_option, field_type

PersonaSampling = field_type(EvalConfig, "persona_sampling")
Unsure, Mode = field_type(EvalConfig, "opinion_unsure"), field_type(EvalConfig, "mode")


def _ev(name: str, *decls: str, **kw: Any) -> Any:
    return field_option(EvalConfig, name, *decls, **kw)


wvs_app = typer.Typer(
    help="World Values Survey data: reference tables, items, model comparisons.", no_args_is_help=True
)


def _alias(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", model).strip("_") or "model"


def eval_cmd(
    model: str = typer.Option("embedded", "--model", help="Model string (embedded, hf:PATH, openai:MODEL@URL, ...)."),
    alias: str = typer.Option(None, "--alias", help="Name of this model in the run (default: from --model)."),
    culture: list[str] = _ev("cultures", "--culture", extra="Name or ISO3; repeatable."),
    compare: list[str] = _ev("compare", "--compare", extra="Repeatable."),
    survey: list[Path] = _ev("survey", "--survey"),
    labels: Path = _ev("survey_labels", "--labels"),
    persona_sampling: PersonaSampling = _ev("persona_sampling", "--persona-sampling"),
    reference: Path = _ev("reference", "--reference", extra="Default: the bundled one."),
    opinions: Path = _ev("opinions", "--opinions", extra="JSONL/JSON/CSV/Parquet."),
    unsure: Unsure = _ev("opinion_unsure", "--unsure"),
    strict: bool = _ev("strict", "--strict"),
    questionnaire: Path = _ev("questionnaire", "--questionnaire"),
    personas: int = _ev("personas", "--personas"),
    style: list[str] = _ev("styles", "--style", help="prompt style", extra="Repeatable."),
    mode: Mode = _ev(
        "mode",
        "--mode",
        default=UNSET,
        help="how answers are read",
        unset_note="default: logprobs when the backend scores options, else generate",
    ),  # fmt: skip
    samples: int = _ev("samples", "--samples"),
    temperature: float = _ev("temperature", "--temperature", help="sampling temperature (generate mode)"),
    variant: list[str] = _ev("variants", "--variant", extra="Repeatable."),
    item: list[str] = _ev(
        "items",
        "--item",
        "--items",
        default=UNSET,
        extra="Repeatable; wvs44, iw10 name item sets.",
        unset_note="default: all items",
    ),
    epsilon: float = _ev("epsilon", "--epsilon"),
    bootstrap: int = _ev("bootstrap", "--bootstrap"),
    seed: int = _ev("seed", "--seed", help="seed of persona sampling, shuffled options and the bootstrap"),
    theme: bool = typer.Option(False, "--by-theme", help="Also print one table per theme."),
    run_dir: Path = typer.Option(Path("runs/wvs-eval"), "--run-dir", help="Run directory (answers are cached)."),
    concurrency: int = _ev("concurrency", "--concurrency", help="prompts sent at the same time"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Ask a model the WVS items as personas of each culture; print KL, JSD, W1, accuracy with 95% intervals."""
    from ..environment import record_environment
    from ..errors import ClcaError
    from ..llm import load_model
    from ..store import DB_NAME, RunStore
    from ..wvs import evaluate, format_table

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
                opinions=str(opinions) if opinions else None, opinion_unsure=unsure, strict=strict,
                questionnaire=str(questionnaire) if questionnaire else None, concurrency=concurrency,
                progress=not quiet,
            )  # fmt: skip
            fresh = not (run_dir / DB_NAME).exists()
            try:
                with RunStore(run_dir) as store:
                    from .._inputs import input_hashes

                    store.bind_inputs(input_hashes(cfg.model_dump(mode="json")))  # a changed input is refused
                    result = await evaluate(store, llm, name, cfg)
                    record_environment(store, {model: llm})
            except ClcaError:
                if fresh:  # bad input found before any answer: leave no empty run behind
                    _remove_if_empty(run_dir)
                raise
        finally:
            await llm.aclose()
        for w in result.warnings:
            typer.echo(w, err=True)
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
    strict: bool = typer.Option(
        False, "--strict", help="Refuse a file at its first bad row (default: leave bad rows out and report them)."
    ),
) -> None:
    """Answer shares (and demographic marginals) of every country in the files, with source and n: figures only.

    The files are streamed (only the needed columns, in chunks where the format allows), so memory stays
    bounded for the full WVS-7 file. Pass the result to `clca eval --reference OUT` (or `eval: reference:`).
    """
    from .._files import check_output_file
    from ..wvs import aggregate, default_questionnaire, load_questionnaire

    check_output_file(out, [*files, questionnaire, labels])  # before reading a large file, not after
    q = load_questionnaire(questionnaire) if questionnaire else default_questionnaire()
    table = aggregate(files, q, labels=labels, progress=not quiet, strict=strict)
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
    if table.problem_count:
        from ..wvs import problem_note

        typer.echo(f"note: {problem_note(table.problem_count, table.problems)}; --strict refuses such files")
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
    with RunStore(run_dir, read_only=True) as store:
        shifts = compare_models(store, base, adapted, culture, reference=reference)
    typer.echo(format_shifts(shifts, base, adapted), nl=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("eval")(eval_cmd)
    app.add_typer(wvs_app, name="wvs")
