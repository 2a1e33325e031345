"""CLI: `clca scenarios adapt|from-norms|export|import|stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..scenarios import AdaptConfig, NormsConfig
from ._options import config_from, field_option
from ._stage import run_stage_command

scenarios_app = typer.Typer(help="Culturally adapted Sotopia-style scenarios.", no_args_is_help=True)

_RUN_DIR = typer.Option(..., "--run-dir", help="Run directory (its run.sqlite stores the scenarios).")
_MODEL = typer.Option("embedded", "--model", help="Model string (embedded, hf:PATH, openai:MODEL@URL, ...).")
_ATTEMPTS = field_option(AdaptConfig, "max_attempts", "--max-attempts")
_TEMP = field_option(AdaptConfig, "temperature", "--temperature", help="sampling temperature")
_SEED = field_option(AdaptConfig, "seed", "--seed")
_CONC = field_option(AdaptConfig, "concurrency", "--concurrency", help="scenarios written at the same time")
_SEEDS_FILE = field_option(AdaptConfig, "seeds_file", "--seeds-file")
_QUIET = typer.Option(False, "--quiet", help="No progress bar.")


def _run(run_dir: Path, model: str, work: Any, what: str, inputs: tuple[Any, ...] = ()) -> None:
    """Run a scenario command with one model, binding the content of its input files (a changed one is refused)."""
    run_stage_command(run_dir, [model], lambda store, llms: work(store, llms[0]), what, inputs)


@scenarios_app.command("adapt")
def adapt_cmd(
    culture: str = typer.Option(..., "--culture", help="Target culture: name, ISO code, alias or profile file."),
    run_dir: Path = _RUN_DIR,
    model: str = _MODEL,
    n: int = field_option(AdaptConfig, "n", "--n"),
    seed_ids: list[str] = field_option(AdaptConfig, "seeds", "--seed-id", extra="Repeatable."),
    seeds_file: Path = _SEEDS_FILE,
    sotopia: str = field_option(AdaptConfig, "sotopia", "--sotopia"),
    sotopia_per_env: int = field_option(
        AdaptConfig, "sotopia_per_env", "--sotopia-per-env", none_as=0, extra="0 = all."
    ),
    max_attempts: int = _ATTEMPTS,
    temperature: float = _TEMP,
    seed: int = _SEED,
    concurrency: int = _CONC,
    quiet: bool = _QUIET,
) -> None:
    """Adapt seed scenarios to a culture (one per seed; keys CULTURE/SEED-ID; resumable)."""
    from ..culture import resolve_culture
    from ..scenarios import adapt_scenarios, load_seed_pool

    cult = resolve_culture(culture)  # fail fast on an unknown culture, before loading a model
    if seeds_file is not None and sotopia is not None:
        raise ConfigError("--seeds-file and --sotopia both name the seeds; give one of them")
    cfg = config_from(
        AdaptConfig, locals(), seeds=seed_ids or None, sotopia_per_env=sotopia_per_env or None, progress=not quiet
    )
    if seeds_file is not None or sotopia is not None:  # a bad seed source fails before the run database exists
        load_seed_pool(cfg)
    work = lambda store, llm: adapt_scenarios(store, llm, cult, cfg)  # noqa: E731
    _run(run_dir, model, work, f"scenarios ({cult.code})", (seeds_file, culture))


@scenarios_app.command("from-norms")
def from_norms_cmd(
    norms_file: Path = typer.Argument(
        ..., help="Norms: JSONL or CSV (norm, optional culture, id, source), or Sotopia-pi's used_prompt.csv."
    ),
    run_dir: Path = _RUN_DIR,
    model: str = _MODEL,
    n: int = field_option(AdaptConfig, "n", "--n"),
    culture: str = field_option(NormsConfig, "culture", "--culture"),
    source: list[str] = field_option(NormsConfig, "sources", "--source", extra="Repeatable."),
    limit: int = field_option(NormsConfig, "limit", "--limit"),
    sample_seed: int = field_option(NormsConfig, "seed", "--sample-seed"),
    seeds_file: Path = _SEEDS_FILE,
    max_attempts: int = _ATTEMPTS,
    temperature: float = _TEMP,
    seed: int = _SEED,
    concurrency: int = _CONC,
    quiet: bool = _QUIET,
) -> None:
    """Write one new scenario per cultural norm (keys CULTURE/norm-ID; resumable)."""
    from ..culture import UnknownCultureError, resolve_culture
    from ..errors import DataError
    from ..scenarios import generate_from_norms, load_norms

    norms = load_norms(norms_file, culture=culture, sources=source or None, limit=limit, seed=sample_seed)
    for nm in norms:  # fail fast on unknown cultures, before loading a model
        try:
            resolve_culture(nm.culture or "")
        except (UnknownCultureError, DataError) as e:
            raise type(e)(f"{norms_file}: norm {nm.id!r}: {e.one_line()}") from None
    cfg = config_from(AdaptConfig, locals(), progress=not quiet)
    work = lambda store, llm: generate_from_norms(store, llm, norms, cfg)  # noqa: E731
    _run(run_dir, model, work, "scenarios from norms", (norms_file, seeds_file))


@scenarios_app.command("export")
def export_cmd(
    run_dir: Path = _RUN_DIR,
    out: Path = typer.Option(..., "--out", help="JSONL file (--format jsonl) or directory (--format sotopia)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (our Scenario records) or sotopia (four JSONL files)."),
    culture: str = typer.Option(None, "--culture", help="Only this culture."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="(--format sotopia) write into a non-empty folder clca did not write."
    ),
) -> None:
    """Export the finished scenarios of a run."""
    from ..scenarios import export_sotopia, iter_scenarios, write_scenarios
    from ..store import RunStore

    if fmt not in ("jsonl", "sotopia"):
        raise ConfigError(f"--format {fmt!r}: expected 'jsonl' or 'sotopia'")
    _require_store(run_dir)
    from .._outputs import check_output

    check_output(out, kind="file" if fmt == "jsonl" else "dir", inputs=[run_dir], overwrite=overwrite, own=_SOTOPIA)
    with RunStore(run_dir, read_only=True) as store:
        items = iter_scenarios(store, culture)
    scenarios = [s for _, s in items]
    if fmt == "jsonl":
        n = write_scenarios(out, scenarios, [run_dir])
        typer.echo(f"wrote {n} scenarios to {out}")
    else:
        counts = export_sotopia(scenarios, out, overwrite=overwrite)
        typer.echo(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@scenarios_app.command("import")
def import_cmd(
    sotopia_dir: Path = typer.Argument(..., help="Directory with Sotopia's four profile JSONL exports."),
    out: Path = typer.Option(..., "--out", help="JSONL file of Scenario records (usable as --seeds-file)."),
) -> None:
    """Convert a Sotopia export (one scenario per env-agent combo) into our scenario JSONL."""
    from .._files import check_output_file
    from ..scenarios import import_sotopia, write_scenarios

    check_output_file(out, [sotopia_dir])
    imp = import_sotopia(sotopia_dir)
    n = write_scenarios(out, imp.scenarios, [sotopia_dir])
    left = {k: len(v) for k, v in imp.unreferenced.items() if v}
    note = f" (records no combo uses, not written: {left})" if left else ""
    typer.echo(f"wrote {n} scenarios to {out}{note}")


@scenarios_app.command("stats")
def stats_cmd(
    run_dir: Path = _RUN_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per culture: scenarios done and failed, failure reasons, first-try validity, name changes, near-duplicates."""
    from ..scenarios import scenario_stats
    from ..store import RunStore

    _require_store(run_dir)
    with RunStore(run_dir, read_only=True) as store:
        stats = scenario_stats(store)
    rows = [
        {
            "culture": s.culture,
            "ok": s.ok,
            "failed": s.failed,
            "first_try_rate": round(s.first_try_rate, 3),
            "name_change_rate": None if s.name_change_rate is None else round(s.name_change_rate, 3),
            "near_duplicate_rate": round(s.near_duplicate_rate, 3),
            "failure_reasons": s.reasons,
        }
        for s in stats
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no scenarios in this run")
        return
    typer.echo(f"{'culture':18} {'ok':>5} {'failed':>6} {'1st-try':>7} {'names':>6} {'near-dup':>8}  failure reasons")
    for r in rows:
        names = "-" if r["name_change_rate"] is None else f"{r['name_change_rate']:.0%}"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["failure_reasons"].items(), key=lambda kv: -kv[1]))
        typer.echo(
            f"{r['culture']:18} {r['ok']:>5} {r['failed']:>6} {r['first_try_rate']:>7.0%} {names:>6} "
            f"{r['near_duplicate_rate']:>8.0%}  {reasons or '-'}"
        )


_SOTOPIA = ("environment_profiles.jsonl", "agent_profiles.jsonl")


def _require_store(run_dir: Path) -> None:
    from ..store import DB_NAME

    if not (run_dir / DB_NAME).is_file():
        raise ConfigError(f"{run_dir}: no run database ({DB_NAME}) here")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(scenarios_app, name="scenarios")
