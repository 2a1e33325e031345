"""Entry point of the `clca` command. Each command group lives in its own module."""

from __future__ import annotations

import sqlite3
import sys

import typer

from .. import __version__
from ..errors import ClcaError
from ..memory import tune_malloc
from . import compare, culture, data, harness, pipeline, report, roleplay, scenarios, serve, study, train, wvs
from ._usage import OneLineErrorsGroup

app = typer.Typer(
    name="clca",
    cls=OneLineErrorsGroup,  # usage errors as one line, exit 2
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


for module in (serve, culture, scenarios, roleplay, data, train, wvs, harness, pipeline, report, study, compare):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2.

    Besides ClcaError, errors of the environment that reach here (a path that is a folder or not
    writable, bytes that are not UTF-8, a file that is not SQLite) are the user's to fix too: one line
    with exit 2, never a traceback. Ctrl-C says what survives and exits 130.
    """
    tune_malloc()  # before any thread allocates: one arena, large blocks given back (clca.memory)
    try:
        app(args=argv, standalone_mode=True)
    except ClcaError as e:
        _fail(e.one_line(), e.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as e:
        if e.code == 130:  # typer turns Ctrl-C into exit 130, silently
            _interrupted()
        raise
    except (OSError, UnicodeError, sqlite3.DatabaseError) as e:
        _fail(_env_error(e), 2)


def _fail(message: str, code: int) -> None:
    from .._scrub import scrub_url_credentials

    typer.echo(f"error: {' '.join(scrub_url_credentials(message).split())}", err=True)
    sys.exit(code)


def _interrupted() -> None:
    typer.echo("interrupted: what was stored so far is kept; run the same command again to resume", err=True)
    sys.exit(130)


def _env_error(e: BaseException) -> str:
    """One line for an OS / decoding / SQLite error, naming the file where the error carries it."""
    if isinstance(e, OSError):
        where = e.filename if e.filename is not None else ""
        what = e.strerror or type(e).__name__
        return f"{where}: {what}" if where else what
    if isinstance(e, UnicodeError):
        return f"input is not UTF-8 text ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
    return f"database error: {e}"


if __name__ == "__main__":
    main()
