"""Usage errors of the command line (bad option value, unknown option, missing argument, bad choice) as one
line on stderr with exit code 2: `error: clca serve: --port: must be <= 65535 (got 99999)`.

The root command's group (`OneLineErrorsGroup`) runs the command tree in Click's non-standalone mode and turns
every `UsageError` into that line itself, instead of the framework's usage text and boxed message. A group
called without a subcommand (`clca dataset`) still shows its help.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from typer._click import exceptions as click_exc  # typer ships its own copy of click
from typer.core import TyperGroup

ROOT = "clca"

_BOUNDS = {
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
}
_TYPES = {
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
    "finite_number": "expected a finite number",
}


def _got(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_got(v) for v in value)
    return shlex.quote(str(value))


def validation_problem(e: ValidationError) -> str:
    """What is wrong with one command-line value, from the first pydantic error: 'must be <= 5 (got 7)'."""
    err = e.errors()[0]
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        what = f"must be {sign} {ctx.get(key)}"
    elif kind in _TYPES:
        what = _TYPES[kind]
    elif kind in ("literal_error", "enum"):
        what = f"must be one of {ctx.get('expected', '').replace(' or ', ', ')}".replace("'", "")
    else:
        what = str(err["msg"]).removeprefix("Value error, ")
        choice = re.match(r"^.* is not one of (.*?)\.?$", what)
        if choice:  # typer's own choice check: "'x' is not one of 'a', 'b'."
            what = "must be one of " + choice.group(1).replace("'", "")
        what = what[:1].lower() + what[1:]
    return f"{what} (got {_got(got)})" if got is not None else what


def _where(ctx: Any) -> str:
    """'clca serve' for the command whose arguments were wrong, whatever the program was called as."""
    names: list[str] = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join([ROOT, *[n for n in reversed(names[:-1]) if n]])


def _param_name(param: Any) -> str:
    """--long-option for an option (its longest name), the METAVAR for an argument."""
    if param is None:
        return ""
    if getattr(param, "param_type_name", "") == "argument":
        return str(param.metavar or param.name).upper()
    opts: Sequence[str] = [*param.opts, *param.secondary_opts]
    return max(opts, key=len) if opts else str(param.name)


def _squash(text: str) -> str:
    text = " ".join(str(text).split()).rstrip(".")
    return text[:1].lower() + text[1:]


def _where_from_args(group: Any, args: Sequence[str]) -> str:
    """'clca dataset build' from the command line, for the errors raised before a context exists."""
    names, cmd = [ROOT], group
    for a in args:
        sub = getattr(cmd, "commands", {}).get(a)
        if sub is None:
            break
        names.append(a)
        cmd = sub
    return " ".join(names)


def one_line(e: click_exc.UsageError, fallback: str = ROOT) -> str:
    """The usage error as 'clca CMD: --option: what is wrong' (no usage text, no box, no newline)."""
    where = _where(e.ctx) if e.ctx is not None else fallback
    if isinstance(e, click_exc.MissingParameter):
        name = _param_name(e.param)
        kind = "argument" if getattr(e.param, "param_type_name", "") == "argument" else "option"
        return f"{where}: {name}: required {kind} missing"
    if isinstance(e, click_exc.BadParameter):
        name = _param_name(e.param) or _squash(" / ".join(e.param_hint or []) if e.param_hint else "")
        cause = e.__cause__
        what = validation_problem(cause) if isinstance(cause, ValidationError) else _squash(e.message)
        return f"{where}: {name}: {what}" if name else f"{where}: {what}"
    if isinstance(e, click_exc.NoSuchOption):
        near = sorted(e.possibilities or [])
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        return f"{where}: {e.option_name}: no such option{hint}"
    if isinstance(e, click_exc.BadOptionUsage):
        what = _squash(e.message).removeprefix(f"option {e.option_name!r} ")
        return f"{where}: {e.option_name}: {what}"
    return f"{where}: {_squash(e.format_message())}"


class OneLineErrorsGroup(TyperGroup):
    """The root group: usage errors anywhere in the tree end as one line on stderr and exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        hide_flag_metavars(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name or ROOT, complete_var, standalone_mode=False, **extra)
        except click_exc.NoArgsIsHelpError as e:  # a group without its subcommand: its help, as before
            if e.format_message().strip():
                e.show()
            sys.exit(e.exit_code)
        except click_exc.UsageError as e:
            argv = list(sys.argv[1:] if args is None else args)
            typer.echo(f"error: {one_line(e, _where_from_args(self, argv))}", err=True)
            sys.exit(2)
        except click_exc.ClickException as e:
            typer.echo(f"error: {_squash(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        # non-standalone mode returns the exit code of typer.Exit, or the command's return value (None)
        sys.exit(rv if isinstance(rv, int) else 0)


def hide_flag_metavars(cmd: Any) -> None:
    """Flags take no value, so their help shows no type (typer would print `<bool>` beside `--quiet`)."""
    for param in getattr(cmd, "params", []):
        if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
            param.metavar = ""
    if hasattr(cmd, "get_help_option") and not getattr(cmd, "_flag_help", False):
        plain = cmd.get_help_option  # --help is made per call, so its type is hidden where it is made

        def get_help_option(ctx: Any, _plain: Any = plain) -> Any:
            opt = _plain(ctx)
            if opt is not None and opt.metavar is None:
                opt.metavar = ""
            return opt

        cmd.get_help_option = get_help_option
        cmd._flag_help = True
    for sub in getattr(cmd, "commands", {}).values():
        hide_flag_metavars(sub)
