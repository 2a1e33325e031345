"""CLI: `clca train run` (LoRA SFT) and `clca train merge` (adapter -> merged safetensors model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..train import TrainConfig
from ._options import UNSET, field_option, field_type

Preset = field_type(TrainConfig, "preset")


def _tc(name: str, *decls: str, **kw: Any) -> Any:
    """A flag of `train run`: None unless given (then it overrides the preset and --config); help and bounds
    from TrainConfig. Preset-driven fields name the default preset's value."""
    return field_option(TrainConfig, name, *decls, default=UNSET, **kw)


train_app = typer.Typer(help="LoRA fine-tuning on a built dataset, and adapter merging.", no_args_is_help=True)


@train_app.command("run")
def run_cmd(
    dataset_dir: Path = typer.Argument(..., help="A `clca dataset build` directory (or a messages .jsonl file)."),
    out: Path = typer.Option(..., "--out", help="Adapter output directory (checkpoints go to OUT/checkpoints)."),
    config: Path = typer.Option(None, "--config", help="YAML file with TrainConfig fields."),
    preset: Preset = _tc("preset", "--preset", extra="Overridden by --config and the flags."),
    model: str = _tc("model", "--model"),
    lr: float = _tc("learning_rate", "--lr", help="learning rate"),
    epochs: float = _tc("num_train_epochs", "--epochs", help="training epochs"),
    max_steps: int = _tc("max_steps", "--max-steps"),
    batch_size: int = _tc("per_device_train_batch_size", "--batch-size", help="per-device train batch size"),
    max_length: int = _tc("max_length", "--max-length"),
    packing: bool = _tc("packing", "--packing/--no-packing"),
    seed: int = _tc("seed", "--seed", help="seed of the LoRA initialisation, data order and dropout"),
    set_: list[str] = typer.Option(None, "--set", help="Any TrainConfig field: --set lora_r=16 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUT/checkpoints."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a LoRA adapter with TRL's SFTTrainer (loss on assistant tokens only)."""
    from ..train import load_train_config, parse_set, train_lora

    overrides = parse_set(set_ or [])
    flags = {
        "model": model,
        "learning_rate": lr,
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "max_length": max_length,
        "packing": packing,
        "seed": seed,
        "progress": False if quiet else None,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    cfg = load_train_config(config, overrides, preset)
    res = train_lora(dataset_dir, cfg, out, resume=resume)
    if resume and res.resumed_from is None:
        typer.echo(f"note: no checkpoint in {out / 'checkpoints'}; trained from step 0")
    elif res.resumed_from:
        typer.echo(f"resumed from {res.resumed_from}")
    ev = f", eval loss {res.eval_loss:.4f}" if res.eval_loss is not None else ""
    tl = f"{res.train_loss:.4f}" if res.train_loss is not None else "n/a"
    typer.echo(
        f"trained {res.global_step} steps: train loss {tl}{ev}; {res.train_tokens} tokens at "
        f"{res.tokens_per_second:.0f} tokens/s"
    )
    from ..llm import ModelSpec

    adapted = ModelSpec.parse(cfg.model).with_adapter(out).format()  # the model's options stay at the end
    typer.echo(f"adapter: {out}  (model string: {adapted})")


@train_app.command("merge")
def merge_cmd(
    adapter: Path = typer.Argument(..., help="Adapter directory written by `clca train run`."),
    out: Path = typer.Option(..., "--out", help="Directory of the merged model (safetensors)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
) -> None:
    """Merge the adapter into its base model; the result serves with vLLM (`vllm serve OUT`)."""
    from ..train import merge_adapter

    merge_adapter(adapter, out, overwrite=overwrite)
    from ..llm import ModelSpec

    typer.echo(f"merged model: {out}  (model string: {ModelSpec('hf', str(out)).format()})")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(train_app, name="train")
