"""CLI: `clca dataset build` and `clca dataset stats` (multi-task training data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..dataset import DatasetConfig
from ._options import UNSET, field_option, field_type

Variant, Order = field_type(DatasetConfig, "variant"), field_type(DatasetConfig, "order")


def _ds(name: str, *decls: str, **kw: Any) -> Any:
    """A flag of `dataset build`: None unless given (then it overrides --config); help and bounds from the model."""
    return field_option(DatasetConfig, name, *decls, default=UNSET, **kw)


dataset_app = typer.Typer(help="Build multi-task training data from a run and inspect it.", no_args_is_help=True)


@dataset_app.command("build")
def build_cmd(
    run_dir: Path = typer.Option(..., "--run-dir", help="Run directory (run.sqlite with episodes, judgements, ...)."),
    out: Path = typer.Option(..., "--out", help="Output dataset directory (written atomically)."),
    variant: Variant = _ds("variant", "--variant", extra="Flags override --config."),
    config: Path = typer.Option(None, "--config", help="YAML file with DatasetConfig fields (flags override it)."),
    control: Path = _ds("control_path", "--control"),
    culture: str = _ds("culture", "--culture"),
    control_culture: str = _ds("control_culture", "--control-culture"),
    control_rows: int = _ds("control_rows", "--control-rows"),
    val_fraction: float = _ds("val_fraction", "--val-fraction"),
    order: Order = _ds("order", "--order"),
    weight: list[str] = typer.Option(None, "--weight", help="Task weight, e.g. --weight intent=0.5 (repeatable)."),
    seed: int = _ds("seed", "--seed", help="seed of split, sampling and order"),
    tokenizer: str = _ds("tokenizer", "--tokenizer", extra="'none' skips them."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Build the training rows of one variant and write messages JSONL, ShareGPT and a datasets dir."""
    from ..config import parse_model, read_yaml
    from ..dataset import build_dataset
    from ..errors import ConfigError

    data = read_yaml(config) if config else {}
    data = data.get("dataset", data) if isinstance(data.get("dataset"), dict) else data
    flags = {
        "variant": variant,
        "control_path": str(control) if control else None,
        "culture": culture,
        "control_culture": control_culture,
        "control_rows": control_rows,
        "val_fraction": val_fraction,
        "order": order,
        "seed": seed,
    }
    data.update({k: v for k, v in flags.items() if v is not None})
    if tokenizer is not None:
        data["tokenizer"] = None if tokenizer.lower() == "none" else tokenizer
    if weight:
        weights = dict(data.get("weights") or {"dialogue": 1.0, "intent": 1.0})
        for w in weight:
            k, sep, v = w.partition("=")
            try:
                weights[k.strip()] = float(v)
            except ValueError:
                raise ConfigError(f"--weight {w!r}: expected TASK=NUMBER, e.g. intent=0.5") from None
            if not sep:
                raise ConfigError(f"--weight {w!r}: expected TASK=NUMBER, e.g. intent=0.5")
        data["weights"] = weights
    cfg = parse_model(DatasetConfig, data, str(config) if config else "options")
    info = build_dataset(run_dir, cfg, out, overwrite=overwrite, progress=not quiet)
    typer.echo(
        f"dataset {cfg.variant}: train {info.rows['train']} rows {info.rows_by_task['train']}, "
        f"validation {info.rows['validation']} rows {info.rows_by_task['validation']}; "
        f"{len(info.scenarios['train'])}/{len(info.scenarios['validation'])} scenarios; "
        f"{info.episodes_used} of {info.episodes_read} episodes used; {info.duplicates_removed} duplicates removed"
    )
    if info.skipped:
        typer.echo("left out: " + ", ".join(f"{k}: {v}" for k, v in sorted(info.skipped.items())))
    typer.echo(f"wrote {out}")


@dataset_app.command("stats")
def stats_cmd(
    dataset_dir: Path = typer.Argument(..., help="A directory written by `clca dataset build`."),
    tokenizer: str = typer.Option("embedded", "--tokenizer", help="Model string whose tokenizer counts tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Rows per split and task, and token-length statistics with the given tokenizer."""
    from rich.table import Table

    from .._tables import print_table
    from ..dataset import dataset_stats, load_info

    info = load_info(dataset_dir)
    stats = dataset_stats(dataset_dir, tokenizer)
    if as_json:
        typer.echo(json.dumps({"rows_by_task": info.rows_by_task, "token_stats": stats}, indent=2))
        return
    table = Table(title=f"{dataset_dir} ({info.config.get('variant')}), tokens by {tokenizer}")
    cols = ["rows", "tokens_mean", "tokens_p50", "tokens_p95", "tokens_max", "assistant_tokens"]
    table.add_column("split")
    table.add_column("task")
    for c in cols:
        table.add_column(c, justify="right")
    for split in ("train", "validation"):
        for task, s in stats.get(split, {}).items():
            table.add_row(split, task, *(str(s.get(c, "")) for c in cols))
    print_table(table)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(dataset_app, name="dataset")
