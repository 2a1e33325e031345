"""Entry point of the `clca` command. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import ClcaError
from . import culture, data, harness, pipeline, report, scenarios, serve, simulate, train, wvs

app = typer.Typer(
    name="clca",
    help="Cultural learning-based culture adaptation of language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clca {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Cultural learning-based culture adaptation of language models."""


for module in (serve, culture, scenarios, simulate, data, train, wvs, harness, pipeline, report):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except ClcaError as e:
        typer.echo(f"error: {e.one_line()}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
