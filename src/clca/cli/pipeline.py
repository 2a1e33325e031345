"""`clca run CONFIG.yaml` (the whole study) and `clca demo` (the shipped demo config)."""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path
from typing import Any

import typer

from ..config import parse_assignments


def run_config(
    config: Path, sets: list[str], until: str | None, run_dir: Path | None, retry_failed: bool = False
) -> Path:
    """Validate the config (no model loads before this passes), run it, print the summary and report path."""
    from rich.console import Console

    from ..pipeline import load_run_config, run_pipeline

    overrides = parse_assignments(sets)
    if run_dir is not None:
        overrides["run_dir"] = str(run_dir)
    cfg = load_run_config(config, overrides)
    console = Console(stderr=True)
    t0 = time.perf_counter()

    def on_stage(res: Any) -> None:
        console.print(
            f"[bold]{res.stage}[/] {res.seconds:.1f}s, {res.model_calls} model calls, "
            f"peak {res.stage_peak_mb:.0f} MB (process {res.peak_rss_mb:.0f} MB): {res.detail}"
        )

    asyncio.run(run_pipeline(cfg, until=until, on_stage=on_stage, retry_failed=retry_failed, source=str(config)))
    from ..report import render_terminal_summary
    from ..store import RunStore

    with RunStore(cfg.run_dir, lock=False) as store:
        render_terminal_summary(store)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"finished in {time.perf_counter() - t0:.0f}s, peak memory {peak_mb:.0f} MB")
    report = Path(cfg.run_dir) / "report" / "report.html"
    if report.is_file():
        typer.echo(f"report: {report}")
    return Path(cfg.run_dir)


def register(app: typer.Typer) -> None:
    """Attach `clca run` and `clca demo` to the root app."""

    @app.command("run")
    def run(
        config: Path = typer.Argument(..., help="run config (YAML); see configs/ and the README"),
        set_: list[str] = typer.Option([], "--set", help="override a config value: KEY=VALUE (dotted keys)"),
        until: str | None = typer.Option(None, "--until", help="stop after this stage"),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="override run_dir"),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="try again the items that failed in an earlier run (default: keep them)"
        ),
    ) -> None:
        """Run the whole study: scenarios, role-play, judge, intentions, dataset, training, evaluation, report."""
        run_config(config, set_, until, run_dir, retry_failed)

    @app.command("demo")
    def demo(
        run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir", help="where the demo run goes"),
        set_: list[str] = typer.Option([], "--set", help="override a config value: KEY=VALUE"),
    ) -> None:
        """Check the embedded model (a chat, a JSON and an option answer), then run configs/demo.yaml on it
        (CPU, minutes) and print where the report is."""
        from importlib.resources import files

        from .serve import _demo

        asyncio.run(_demo("embedded", True, 32))
        cfg = Path(str(files("clca") / "data" / "configs" / "demo.yaml"))
        run_config(cfg, set_, None, run_dir)

    register_config(app)


def config_reference() -> str:
    """Every key of a run config: section, name, type, default, help text."""
    from pydantic import BaseModel

    from ..run_config import ModelsConfig, RunConfig, section_models

    lines: list[str] = []

    def emit(section: str, model: type[BaseModel]) -> None:
        lines.append(f"[{section}]" if section else "[top level]")
        for name, f in model.model_fields.items():
            if section == "" and name in section_models() or name == "models" and section == "":
                continue
            ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
            default = "(required)" if f.is_required() else repr(f.get_default(call_default_factory=True))
            lines.append(f"  {name}: {ann} = {default}" + (f"  # {f.description}" if f.description else ""))
        lines.append("")

    emit("", RunConfig)
    emit("models", ModelsConfig)
    for section, model in section_models().items():
        emit(section, model)
    return "\n".join(lines)


def check_config_file(config: Path) -> Any:
    """The validated run config, after every check a full run makes before it starts (errors name the file)."""
    from ..preflight import check_run
    from ..run_config import STAGES, load_run_config

    cfg = load_run_config(config)
    check_run(cfg, STAGES, source=str(config))  # every file a full run reads
    return cfg


def register_config(app: typer.Typer) -> None:
    group = typer.Typer(help="Run configs: check one, or print the reference of every key.", no_args_is_help=True)

    @group.command("reference")
    def reference() -> None:
        """Print every config key with its type, default and help text."""
        typer.echo(config_reference())

    @group.command("check")
    def check(config: Path = typer.Argument(..., help="run config or study config (YAML)")) -> None:
        """Validate a config (model strings, cultures, sizes, every file and local model it reads) without
        loading any model; a study file has each of its runs checked."""
        from ..study import check_study, is_study_config

        if is_study_config(config):
            runs = check_study(config)
            typer.echo(f"{config}: ok (a study of {len(runs)} runs, each checked; list them with `clca study plan`)")
            return
        cfg = check_config_file(config)
        typer.echo(f"{config}: ok ({len(cfg.cultures)} culture(s), run_dir {cfg.run_dir})")

    app.add_typer(group, name="config")
