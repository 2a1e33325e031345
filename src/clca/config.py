"""Loading YAML configs into pydantic models, with one-line errors that name the file and the field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (plain YAML keeps the last one)."""


def _strict_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hashable = key in seen
        except TypeError:
            continue
        if hashable:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def strict_yaml(text: str, where: str = "YAML input") -> Any:
    """Parse YAML safely (no Python objects), refusing duplicate keys and nesting deeper than
    clca._files.MAX_DEPTH (a one-line DataError naming `where`)."""
    from ._files import check_nesting
    from .errors import DataError

    check_nesting(text, where)
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise DataError(f"{where}: nested too deeply; not a clca input") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Safely load a YAML mapping; malformed YAML (or a duplicate key) is a ConfigError with the line number."""
    from ._files import read_text

    p = Path(path)
    if not p.is_file() and not p.is_dir():
        raise ConfigError(f"{p}: config file not found")
    text = read_text(p, "config file")
    try:
        data = strict_yaml(text, str(p))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p}: malformed YAML at {where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    return data


def validation_message(e: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    """The first validation error as 'source: a.b.c: message' (plus a count of the others)."""
    errs = e.errors()
    first = errs[0]
    loc = ".".join(_short(str(x)) for x in (*prefix, *first["loc"]))
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    extra = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
    text = f"{loc}: {msg}{extra}" if loc else f"{msg}{extra}"
    return f"{source}: {text}" if source else text


def _short(part: str, limit: int = 60) -> str:
    """A key as shown in an error: long ones cut (a key can be a whole line of a wrong file)."""
    return part if len(part) <= limit else part[:limit] + "..."


def parse_model(model: type[M], data: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, source)) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config; `extends: OTHER.yaml` (relative to the file) is merged underneath it."""
    p = Path(path).resolve()
    if p in _seen:
        raise ConfigError(f"{path}: extends forms a cycle")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a file name")
    if Path(parent).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"{path}: extends: {parent[:200]!r} is not a config file (expected .yaml, .yml or .json)")
    return _deep_merge(read_config_tree(p.parent / parent, (*_seen, p)), data)


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Read YAML (following `extends`), apply dotted-key overrides ({'train.lr': 1e-4}), validate strictly."""
    data = read_config_tree(path)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {k} is not a section")
        node[leaf] = value
    return parse_model(model, data, str(path))


def config_hash(cfg: BaseModel, exclude: set[str] | None = None) -> str:
    """Stable hash of a validated config (canonical JSON)."""
    payload = cfg.model_dump(mode="json", exclude=exclude)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as YAML scalars or lists (`3`, `true`, `[a, b]`)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set roleplay.max_turns=6")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k.strip()] = v
    return out
