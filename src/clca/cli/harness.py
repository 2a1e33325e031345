"""CLI: `clca harness export` (the WVS evaluation as lm-evaluation-harness / inspect_ai tasks), `clca harness path`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..wvs import EvalConfig
from ._options import UNSET, field_option


def _ev(name: str, *decls: str, **kw: Any) -> Any:
    return field_option(EvalConfig, name, *decls, **kw)


harness_app = typer.Typer(
    help="clca's WVS evaluation as tasks of lm-evaluation-harness and inspect_ai.", no_args_is_help=True
)


@harness_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="Output directory (data/, lm_eval/, manifest.json)."),
    culture: list[str] = _ev("cultures", "--culture", extra="Name or ISO3; repeatable."),
    compare: list[str] = _ev("compare", "--compare", extra="Repeatable."),
    survey: list[Path] = _ev("survey", "--survey", extra="Real personas and answers."),
    reference: Path = _ev("reference", "--reference", extra="Default: the bundled one."),
    questionnaire: Path = _ev("questionnaire", "--questionnaire"),
    personas: int = _ev("personas", "--personas"),
    style: list[str] = _ev("styles", "--style", help="prompt style", extra="Repeatable."),
    samples: int = _ev("samples", "--samples", extra="Generate tasks."),
    temperature: float = _ev("temperature", "--temperature", help="sampling temperature (generate tasks)"),
    variant: list[str] = _ev("variants", "--variant", extra="Repeatable."),
    item: list[str] = _ev("items", "--item", default=UNSET, extra="Repeatable.", unset_note="default: all items"),
    epsilon: float = _ev("epsilon", "--epsilon"),
    max_tokens: int = _ev("max_tokens", "--max-tokens", extra="Generate tasks."),
    seed: int = _ev("seed", "--seed", help="seed of persona sampling and shuffled options"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing non-empty folder that clca did not write."
    ),
) -> None:
    """Write the evaluation's prompts as documents and lm-eval task YAMLs (no model is loaded)."""
    from ..harness import export_tasks

    cfg = EvalConfig(
        cultures=culture, compare=compare, styles=style, personas=personas, samples=samples, temperature=temperature,
        epsilon=epsilon, seed=seed, max_tokens=max_tokens, variants=variant, items=item or None,
        survey=[str(s) for s in survey],
        reference=str(reference) if reference else None,
        questionnaire=str(questionnaire) if questionnaire else None,
    )  # fmt: skip
    summary = export_tasks(cfg, out, max_tokens=max_tokens, overwrite=overwrite)
    for w in summary.warnings:
        typer.echo(w, err=True)
    typer.echo(f"exported {summary.line()}")
    for task, n in summary.tasks.items():
        typer.echo(f"  {task}: {n} documents")
    typer.echo(f"lm-eval:  lm_eval --include_path {out}/lm_eval --tasks clca_wvs --apply_chat_template ...")
    typer.echo(f"inspect:  inspect eval {_inspect_file()} -T docs={out}/data/<task>.jsonl --model ...")


def _inspect_file() -> Path:
    from ..harness import inspect_task

    return Path(inspect_task.__file__)


@harness_app.command("path")
def path_cmd(which: str = typer.Argument(..., help="lm-eval | inspect")) -> None:
    """Print where the harness integration lives (the inspect task file, or the lm-eval hooks module)."""
    if which == "inspect":
        typer.echo(str(_inspect_file()))
    elif which == "lm-eval":
        from ..harness import lm_eval_utils

        typer.echo(str(Path(lm_eval_utils.__file__)))
    else:
        raise ConfigError(f"unknown harness {which!r}; use lm-eval or inspect")


def register(app: typer.Typer) -> None:
    app.add_typer(harness_app, name="harness")
