"""`clca run CONFIG.yaml` (the whole study) and `clca demo` (the shipped demo config)."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"--set {s!r}: expected KEY=VALUE, e.g. --set roleplay.max_turns=6")
        k, v = s.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def run_config(config: Path, sets: list[str], until: str | None, run_dir: Path | None) -> Path:
    """Validate the config (no model loads before this passes), run it, print the summary and report path."""
    from rich.console import Console

    from ..pipeline import load_run_config, run_pipeline

    overrides = _parse_sets(sets)
    if run_dir is not None:
        overrides["run_dir"] = str(run_dir)
    cfg = load_run_config(config, overrides)
    console = Console(stderr=True)
    t0 = time.perf_counter()

    def on_stage(res: Any) -> None:
        console.print(f"[bold]{res.stage}[/] {res.seconds:.1f}s, {res.model_calls} model calls: {res.detail}")

    asyncio.run(run_pipeline(cfg, until=until, on_stage=on_stage))
    from ..report import render_terminal_summary
    from ..store import RunStore

    with RunStore(cfg.run_dir) as store:
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
    ) -> None:
        """Run the whole study: scenarios, role-play, judge, intentions, dataset, training, evaluation, report."""
        run_config(config, set_, until, run_dir)

    @app.command("demo")
    def demo(
        run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir", help="where the demo run goes"),
        set_: list[str] = typer.Option([], "--set", help="override a config value: KEY=VALUE"),
    ) -> None:
        """Run configs/demo.yaml on the embedded model (CPU, about 10 minutes) and print where the report is."""
        from importlib.resources import files

        cfg = Path(str(files("clca") / "data" / "configs" / "demo.yaml"))
        run_config(cfg, set_, None, run_dir)
