"""CLI: `clca roleplay` (old name: `clca simulate`), `clca judge`, `clca intents`, `clca dialogues export|stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..intents import IntentConfig
from ..judge import JudgeConfig
from ..roleplay import RoleplayConfig
from ..runner import RunSummary
from ._options import config_from, field_option, field_type
from ._stage import run_stage_command

JudgeMode = field_type(JudgeConfig, "mode")

_RUN_DIR = typer.Option(..., "--run-dir", help="Run directory (holds run.sqlite with the scenarios).")


def _rp(name: str, *decls: str) -> Any:
    return field_option(RoleplayConfig, name, *decls)


_QUIET = typer.Option(False, "--quiet", help="No progress bar.")
_DROP = typer.Option(
    "confident,very_confident",
    "--drop-confidence",
    help="Confidence levels at which a not_aligned meta verdict or a bad quality verdict drops an episode.",
)


def _rule(drop: str) -> Any:
    from ..judge import Confidence, DiscardRule

    levels = [s.strip() for s in drop.split(",") if s.strip()]
    try:
        conf = [Confidence(s) for s in levels]
    except ValueError:
        raise ConfigError(
            f"--drop-confidence: {drop!r} must list very_confident, confident and/or not_sure, comma-separated"
        ) from None
    return DiscardRule(meta_not_aligned=conf, quality_bad=conf)


def roleplay_cmd(
    run_dir: Path = _RUN_DIR,
    model: str = typer.Option("embedded", "--model", help="Model string of both agents (or of the first)."),
    model_b: str = typer.Option(None, "--model-b", help="Model string of the second agent (default: --model)."),
    culture: str = _rp("culture", "--culture"),
    limit: int = _rp("limit", "--limit"),
    scenario: list[str] = typer.Option(None, "--scenario", help="Only these scenario keys (repeatable)."),
    samples: int = _rp("samples", "--samples"),
    max_turns: int = _rp("max_turns", "--max-turns"),
    max_none: int = _rp("max_consecutive_none", "--max-none"),
    temperature: float = _rp("temperature", "--temperature"),
    max_tokens: int = _rp("max_tokens", "--max-tokens"),
    seed: int = _rp("seed", "--seed"),
    concurrency: int = _rp("concurrency", "--concurrency"),
    quiet: bool = _QUIET,
) -> None:
    """Role-play every scenario of the run SAMPLES times; resumes interrupted episodes from their stored turns."""
    from ..roleplay import run_roleplay

    cfg = config_from(RoleplayConfig, locals(), max_consecutive_none=max_none, progress=not quiet)
    specs = [model] if model_b is None else [model, model_b]

    async def work(store: Any, llms: list[Any]) -> RunSummary:
        agents = llms[0] if len(llms) == 1 else llms
        return await run_roleplay(store, agents, cfg, scenario_keys=scenario or None)

    run_stage_command(run_dir, specs, work, "episodes")


def judge_cmd(
    run_dir: Path = _RUN_DIR,
    model: str = typer.Option("embedded", "--model", help="Model string of the judge."),
    mode: JudgeMode = field_option(JudgeConfig, "mode", "--mode"),
    culture: str = field_option(JudgeConfig, "culture", "--culture"),
    limit: int = field_option(JudgeConfig, "limit", "--limit"),
    max_tokens: int = field_option(JudgeConfig, "max_tokens", "--max-tokens"),
    concurrency: int = field_option(JudgeConfig, "concurrency", "--concurrency"),
    quiet: bool = _QUIET,
) -> None:
    """Judge the run's episodes; all verdicts are stored, the kept set is a query (see `dialogues stats`)."""
    from ..judge import judge_episodes

    cfg = JudgeConfig(
        mode=mode, culture=culture, limit=limit, max_tokens=max_tokens, concurrency=concurrency, progress=not quiet
    )
    run_stage_command(run_dir, [model], lambda store, llms: judge_episodes(store, llms[0], cfg), "judgements")


def intents_cmd(
    run_dir: Path = _RUN_DIR,
    model: str = typer.Option("embedded", "--model", help="Model string of the annotator."),
    culture: str = field_option(IntentConfig, "culture", "--culture"),
    limit: int = field_option(IntentConfig, "limit", "--limit"),
    all_episodes: bool = typer.Option(False, "--all", help="Annotate every ok episode, not only the kept ones."),
    drop: str = _DROP,
    max_tokens: int = field_option(IntentConfig, "max_tokens", "--max-tokens"),
    concurrency: int = field_option(IntentConfig, "concurrency", "--concurrency"),
    quiet: bool = _QUIET,
) -> None:
    """Annotate the intention of every content turn of the kept episodes."""
    from ..intents import annotate_intents

    cfg = IntentConfig(
        episodes="all" if all_episodes else "kept",
        rule=_rule(drop),
        culture=culture,
        limit=limit,
        max_tokens=max_tokens,
        concurrency=concurrency,
        progress=not quiet,
    )
    run_stage_command(run_dir, [model], lambda store, llms: annotate_intents(store, llms[0], cfg), "intentions")


def _open_existing(run_dir: Path) -> Any:
    from ..store import DB_NAME, RunStore

    if not (run_dir / DB_NAME).is_file():
        raise ConfigError(f"{run_dir}: no run database ({DB_NAME}) here")
    return RunStore(run_dir, read_only=True)


def export_cmd(
    run_dir: Path = _RUN_DIR,
    out: Path = typer.Option(..., "--out", help="Output JSONL file (written atomically)."),
    all_episodes: bool = typer.Option(False, "--all", help="Export every ok episode, with its kept flag."),
    drop: str = _DROP,
) -> None:
    """Export kept dialogues with their verdicts and intentions as JSONL."""
    from ..intents import export_dialogues

    with _open_existing(run_dir) as store:
        n = export_dialogues(store, out, _rule(drop), include_all=all_episodes)
    typer.echo(f"wrote {n} dialogues to {out}")


def stats_cmd(
    run_dir: Path = _RUN_DIR,
    drop: str = _DROP,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Per-culture statistics: dialogues generated / kept, turns per dialogue, words per turn, cultural share,
    and the measured quality of all ok dialogues: echo turns, words per turn, distinct-2, culture-plausible
    names, judge keep rate."""
    from ..intents import dialogue_stats

    with _open_existing(run_dir) as store:
        stats = dialogue_stats(store, _rule(drop))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    from rich.table import Table

    from .._tables import print_table

    def fmt(x: Any, pct: bool = False) -> str:
        if x is None:
            return "-"
        return f"{100 * x:.1f}%" if pct else (f"{x:.1f}" if isinstance(x, float) else str(x))

    table = Table("culture", "generated", "failed", "judged", "kept", "turns/dialogue", "words/turn", "cultural")
    quality = Table(
        "culture", "echo turns", "words/turn", "distinct-2", "culture names", "keep rate",
        title="quality of all finished dialogues",
    )  # fmt: skip
    rows = [*stats["cultures"].items(), ("total", stats["total"])]
    for name, s in rows:
        table.add_row(
            name,
            fmt(s["generated"]),
            fmt(s["failed"]),
            fmt(s["judged"]),
            fmt(s["kept"]),
            fmt(s["turns_per_dialogue"]),
            fmt(s["words_per_turn"]),
            fmt(s["cultural_share"], pct=True),
        )
        quality.add_row(
            name,
            fmt(s["echo_share"], pct=True),
            fmt(s["words_per_turn_all"]),
            "-" if s["distinct_2"] is None else f"{s['distinct_2']:.2f}",
            fmt(s["names_share"], pct=True),
            fmt(s["keep_rate"], pct=True),
        )
    print_table(table)
    print_table(quality)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("roleplay")(roleplay_cmd)
    app.command("simulate", hidden=True, help="The old name of `clca roleplay`.")(roleplay_cmd)
    app.command("judge")(judge_cmd)
    app.command("intents")(intents_cmd)
    dialogues = typer.Typer(help="Inspect and export role-play dialogues.", no_args_is_help=True)
    dialogues.command("export")(export_cmd)
    dialogues.command("stats")(stats_cmd)
    app.add_typer(dialogues, name="dialogues")
