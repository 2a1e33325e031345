"""CLI: `clca harness export` (the WVS evaluation as lm-evaluation-harness / inspect_ai tasks), `clca harness path`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError

harness_app = typer.Typer(
    help="clca's WVS evaluation as tasks of lm-evaluation-harness and inspect_ai.", no_args_is_help=True
)


@harness_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="Output directory (data/, lm_eval/, manifest.json)."),
    culture: list[str] = typer.Option(..., "--culture", help="Target culture (name or ISO3); repeatable."),
    compare: list[str] = typer.Option([], "--compare", help="Other cultures; repeatable."),
    survey: list[Path] = typer.Option([], "--survey", help="WVS respondent file(s): real personas and answers."),
    reference: Path = typer.Option(None, "--reference", help="Reference table JSON (default: the bundled one)."),
    questionnaire: Path = typer.Option(None, "--questionnaire", help="Questionnaire YAML/JSON (default: bundled)."),
    personas: int = typer.Option(20, "--personas", min=1, help="Personas per culture."),
    style: list[str] = typer.Option(["persona"], "--style", help="persona | cultural | anthropological | none."),
    samples: int = typer.Option(20, "--samples", min=1, help="Sampled answers per prompt (generate tasks)."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Sampling temperature (generate tasks)."),
    variant: list[str] = typer.Option(["base"], "--variant", help="base | perm<k> | para."),
    item: list[str] = typer.Option([], "--item", help="Only these item ids (repeatable)."),
    epsilon: float = typer.Option(1e-3, "--epsilon", min=0.0, help="KL smoothing of zero survey shares."),
    max_tokens: int = typer.Option(
        None, "--max-tokens", min=1, help="Reply budget of the generate tasks (default: as clca eval)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write the evaluation's prompts as documents and lm-eval task YAMLs (no model is loaded)."""
    from ..harness import export_tasks
    from ..wvs import EvalConfig

    for s in style:
        if s not in ("persona", "cultural", "anthropological", "none"):
            raise ConfigError(f"--style: {s!r} is not one of persona, cultural, anthropological, none")
    cfg = EvalConfig(
        cultures=culture, compare=compare, styles=style, personas=personas, samples=samples, temperature=temperature,
        epsilon=epsilon, seed=seed, variants=variant, items=item or None, survey=[str(s) for s in survey],
        reference=str(reference) if reference else None,
        questionnaire=str(questionnaire) if questionnaire else None,
    )  # fmt: skip
    summary = export_tasks(cfg, out, max_tokens=max_tokens)
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
