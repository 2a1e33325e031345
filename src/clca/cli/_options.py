"""Command-line options built from the fields of the pydantic config models, so a default, a bound and a help
text live in one place: the model. `field_option(RoleplayConfig, "max_turns", "--max-turns")` is a
`typer.Option` whose default, help and range are the field's; values outside the field's constraints (also the
strict ones, `gt`/`lt`, and the literal choices) are refused while the command line is parsed, as a one-line
usage error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Annotated, Any, TypeVar

import annotated_types as at
import typer
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)

#: default=UNSET: the option is None unless given, so a config file (or the model) decides; help names the default
UNSET: Any = None
_FROM_MODEL: Any = object()


def model_field(model: type[BaseModel], name: str) -> FieldInfo:
    try:
        return model.model_fields[name]
    except KeyError:
        raise KeyError(f"{model.__name__} has no field {name!r}") from None


def field_default(model: type[BaseModel], name: str) -> Any:
    """The field's default (a default_factory is called); Ellipsis for a required field."""
    f = model_field(model, name)
    if f.is_required():
        return ...
    return f.get_default(call_default_factory=True)


def field_bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    """The numeric constraints of a field: {'ge': 1, 'le': 10, 'gt': ..., 'lt': ...} (only those set)."""
    out: dict[str, float] = {}
    for m in model_field(model, name).metadata:
        for key in ("ge", "le", "gt", "lt"):
            v = getattr(m, key, None)
            if v is not None and isinstance(m, (at.Ge, at.Le, at.Gt, at.Lt, at.Interval)):
                out[key] = v
    return out


def _help(model: type[BaseModel], name: str, fallback: str | None, extra: str | None, unset: bool | str) -> str:
    text = model_field(model, name).description or fallback or ""
    first = text.split(" ", 1)[0]
    if not first.endswith(":") and not text.startswith(f"{first} |"):  # "kept: ...", "base | para" name values
        text = text[:1].upper() + text[1:]
    if text and not text.endswith("."):
        text += "."
    text = " ".join(x for x in (text, extra or "") if x)
    if isinstance(unset, str):
        text += f" ({unset})"
    elif unset:
        d = field_default(model, name)
        shown = "none" if d is None else ", ".join(map(str, d)) if isinstance(d, list) else d
        text += f" (default: {shown})" if d is not ... else ""
    from rich.markup import escape  # typer renders help as rich markup: "[wandb]" must stay visible

    return escape(text)


def _checker(model: type[BaseModel], name: str, none_as: Any) -> Any:
    f = model_field(model, name)
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation)

    def check(value: Any) -> Any:
        if value is None or (none_as is not None and value == none_as):
            return value
        given = [_plain(v) for v in value] if isinstance(value, (list, tuple)) else _plain(value)
        if isinstance(given, list) and not given:
            return value
        if isinstance(given, list) and not _is_list(f):
            for v in given:
                check(v)
            return value
        try:
            adapter.validate_python(given)
        except ValidationError as e:
            raise typer.BadParameter(str(e)) from e
        return value

    return check


def _plain(value: Any) -> Any:
    """A path as the text the user typed (config fields hold file names as str or Path)."""
    return str(value) if isinstance(value, PurePath) else value


def _is_list(f: FieldInfo) -> bool:
    from typing import get_args, get_origin

    ann = f.annotation
    return get_origin(ann) is list or any(get_origin(a) is list for a in get_args(ann))


def field_option(
    model: type[BaseModel],
    name: str,
    *param_decls: str,
    default: Any = _FROM_MODEL,
    help: str | None = None,  # noqa: A002 - used only when the field has no description
    extra: str | None = None,
    none_as: Any = None,
    unset_note: str | None = None,
    **kwargs: Any,
) -> Any:
    """A typer.Option mirroring `model.name`: default, help text and bounds from the field.

    default=UNSET makes the option None unless given (a config file or the model decides; the help names the
    model's default, or unset_note instead). none_as=0: the command line spells the field's None as 0 (the
    lower bound becomes 0).
    """
    unset = default is UNSET
    value = field_default(model, name) if default is _FROM_MODEL else default
    bounds = field_bounds(model, name)
    if "ge" in bounds:
        kwargs.setdefault("min", none_as if none_as is not None else bounds["ge"])
    if "le" in bounds:
        kwargs.setdefault("max", bounds["le"])
    opt = typer.Option(
        value,
        *param_decls,
        help=_help(model, name, help, extra, unset_note if unset and unset_note else unset),
        callback=_checker(model, name, none_as),
        **kwargs,
    )
    opt.mirrors = (model, name, unset, none_as)  # type: ignore[attr-defined]
    return opt


def config_from(model: type[M], options: Mapping[str, Any], **values: Any) -> M:
    """`model` built from a command's options (`locals()`): each option named like one of its fields, then
    `values` (fields whose option has another name or form, such as `progress=not quiet`)."""
    picked = {k: v for k, v in options.items() if k in model.model_fields}
    return model(**{**picked, **values})


def field_type(model: type[BaseModel], name: str) -> Any:
    """The field's annotation, for a command's signature: `Mode = field_type(JudgeConfig, "mode")` then
    `mode: Mode = field_option(...)` lists the choices of a Literal field in the help."""
    return model_field(model, name).annotation


def original_callback(cmd: Any) -> Any:
    """The function behind a click command built by typer (None for a group without a callback)."""
    fn = getattr(cmd, "callback", None)
    return getattr(fn, "__wrapped__", fn)
