"""CLI: `clca culture show NAME`, `clca culture list`."""

from __future__ import annotations

import json

import typer

culture_app = typer.Typer(
    help="Country culture profiles (Hofstede dimensions, Inglehart-Welzel map).", no_args_is_help=True
)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


@culture_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Country name, ISO alpha-2/alpha-3, alias, or a profile file (.yaml/.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile and prompt text as JSON."),
) -> None:
    """Print a culture's figures and the exact text that goes into prompts."""
    from ..culture import HOFSTEDE_DIMS, IW_AXES, resolve_culture

    c = resolve_culture(name)
    if as_json:
        typer.echo(json.dumps({**c.model_dump(mode="json"), "prompt_text": c.describe()}, ensure_ascii=False, indent=2))
        return
    ids = ", ".join(x for x in (c.iso2, c.iso3) if x) or c.id
    typer.echo(f"{c.name} ({ids})")
    if c.aliases:
        typer.echo(f"  aliases: {', '.join(c.aliases)}")
    scores = c.hofstede_scores()
    if scores:
        region = c.hofstede_region.scores.present() if c.hofstede_region else {}
        cells = [f"{d}={_fmt(scores.get(d))}{'*' if d in region else ''}" for d in HOFSTEDE_DIMS]
        typer.echo("  Hofstede: " + "  ".join(cells))
        if c.hofstede_region is not None and region:
            typer.echo(
                f"    * from the {c.hofstede_region.region} regional row: {c.name} has no score of its own for "
                + ", ".join(region)
            )
    elif c.iso3:
        typer.echo("  Hofstede: no scores (neither its own nor a regional row)")
    if c.iw is not None:
        year = f" (survey {c.iw.year})" if c.iw.year else ""
        typer.echo("  IW map: " + "  ".join(f"{a}={_fmt(getattr(c.iw, a))}" for a in IW_AXES) + year)
    typer.echo("")
    typer.echo("Prompt text:")
    typer.echo(c.describe())


@culture_app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List every culture with its figures (- = unknown; Hofstede source: own, own + region, region,
    own (partial), none), then how many countries have each source."""
    from ..culture import HOFSTEDE_DIMS, list_cultures, source_counts

    if not as_json:
        head = " ".join(f"{d:>4}" for d in HOFSTEDE_DIMS)
        typer.echo(f"{'ISO3':4} {'name':34} {head}  {'trad-sec':>8} {'surv-se':>8}  source")
    for c in list_cultures():
        if as_json:
            row = {**c.model_dump(mode="json"), "hofstede_source": c.hofstede_source()}
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        h = c.hofstede_scores()
        dims = " ".join(f"{_fmt(h.get(d)):>4}" for d in HOFSTEDE_DIMS)
        iw = c.iw
        m = f"{_fmt(iw.traditional_secular if iw else None):>8} {_fmt(iw.survival_self_expression if iw else None):>8}"
        typer.echo(f"{(c.iso3 or '-'):4} {c.name[:34]:34} {dims}  {m}  {c.hofstede_source()}")
    if not as_json:
        counts = source_counts()
        typer.echo(
            f"{sum(counts.values())} countries; Hofstede scores: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(culture_app, name="culture")
