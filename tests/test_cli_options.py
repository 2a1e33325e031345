"""CLI options that mirror a config field take default, help, bounds and choices from the pydantic model
(`clca.cli._options.field_option`); this walks every option of every command so a drift fails here."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from clca.cli._options import field_bounds, field_default, original_callback
from clca.cli.main import app
from clca.dataset import DatasetConfig
from clca.intents import IntentConfig
from clca.judge import JudgeConfig
from clca.roleplay import RoleplayConfig
from clca.scenarios import AdaptConfig, NormsConfig
from clca.train import TrainConfig
from clca.wvs import EvalConfig

#: the config models each command's options mirror (a command that stops deriving them fails below)
COMMAND_MODELS: dict[str, set[type[BaseModel]]] = {
    "scenarios adapt": {AdaptConfig},
    "scenarios from-norms": {AdaptConfig, NormsConfig},
    "roleplay": {RoleplayConfig},
    "judge": {JudgeConfig},
    "intents": {IntentConfig},
    "dataset build": {DatasetConfig},
    "train run": {TrainConfig},
    "eval": {EvalConfig},
    "harness export": {EvalConfig},
}


def _commands() -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(path: tuple[str, ...], cmd: Any) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out[" ".join(path)] = cmd
            return
        for name, sub in subs.items():
            walk((*path, name), sub)

    walk((), typer.main.get_command(app))
    return out


COMMANDS = _commands()


def _options(path: str) -> list[tuple[Any, Any]]:
    """(click option, typer OptionInfo from the signature) of every option of a command."""
    import inspect

    cmd = COMMANDS[path]
    sig = inspect.signature(original_callback(cmd)).parameters
    return [(p, sig[p.name].default) for p in cmd.params if p.param_type_name == "option" and p.name in sig]


MIRRORS = [
    (path, p.name, p, info)
    for path in COMMANDS
    for p, info in _options(path)
    if getattr(info, "mirrors", None) is not None
]


def _choices(model: type[BaseModel], name: str) -> tuple[Any, ...] | None:
    ann = model.model_fields[name].annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) is not None else []
    if typing.get_origin(ann) is list or (args and typing.get_origin(args[0]) is list):
        ann = typing.get_args(ann if typing.get_origin(ann) is list else args[0])[0]
    return typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else None


@pytest.mark.parametrize("path, name, param, info", MIRRORS, ids=[f"{m[0]}:{m[1]}" for m in MIRRORS])
def test_mirrored_option_equals_the_model_field(path: str, name: str, param: Any, info: Any) -> None:
    model, field, unset, none_as = info.mirrors
    # default: the model's, or None when the option only overrides a config file (the help names the default)
    default = field_default(model, field)
    if unset:
        assert param.default in (None, ()), (path, name, param.default)
    elif default is ...:
        assert param.required, (path, name)
    else:
        got = list(param.default) if isinstance(param.default, tuple) else param.default
        assert got == default, (path, name, got, default)
    # bounds: inclusive ones are the option's range, strict ones are checked while parsing
    bounds = field_bounds(model, field)
    assert info.min == (none_as if none_as is not None else bounds.get("ge")), (path, name)
    assert info.max == bounds.get("le"), (path, name)
    for key in ("gt", "lt"):
        if key in bounds:
            with pytest.raises(typer.BadParameter):
                info.callback(bounds[key])
    # choices: a Literal field's values, no more, no less
    choices = _choices(model, field)
    if choices is not None:
        hint = typing.get_type_hints(original_callback(COMMANDS[path])).get(name)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `X | None` -> X
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if typing.get_origin(hint) is typing.Literal:  # listed in the help; else the field's check refuses others
            assert typing.get_args(hint) == choices, (path, name, hint)
        with pytest.raises(typer.BadParameter):
            info.callback(["no-such-choice"] if param.multiple else "no-such-choice")
    # help text: the field's description
    desc = model.model_fields[field].description
    if desc:
        flat = " ".join(info.help.replace("\\[", "[").split()).lower()
        assert " ".join(desc.split()).lower().rstrip(".") in flat, (path, name, info.help)


@pytest.mark.parametrize("path", sorted(COMMAND_MODELS))
def test_no_hand_declared_copy_of_a_config_field(path: str) -> None:
    """Every option of a command named like a field of its config models is derived from that field."""
    mirrored = {info.mirrors[0] for _, info in ((p, i) for p, i in _options(path)) if hasattr(info, "mirrors")}
    assert mirrored == COMMAND_MODELS[path], (path, mirrored)
    fields = {f for m in COMMAND_MODELS[path] for f in m.model_fields}
    for p, info in _options(path):
        names = {p.name, *(o.lstrip("-").replace("-", "_") for o in p.opts)}
        if names & fields:
            assert hasattr(info, "mirrors"), f"{path} {p.opts[0]}: hand-declared copy of a config field"


def test_the_walk_sees_the_options() -> None:
    assert len(MIRRORS) >= 70, len(MIRRORS)


def test_a_strict_bound_of_the_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from clca.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "run", "ds", "--out", "ad", "--lr", "0"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: clca train run: --lr: must be > 0.0 (got 0.0)\n"


def test_serve_limits_default_to_serve_limits() -> None:
    from clca.llm.serving import ServeLimits

    params = {p.name: p for p in COMMANDS["serve"].params}
    for name in ("max_tokens_limit", "max_prompt_tokens", "max_body_mb", "max_n"):
        assert params[name].default == getattr(ServeLimits(), name), name
