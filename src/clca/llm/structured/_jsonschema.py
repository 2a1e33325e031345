"""The one owner of walking JSON schemas (the subset pydantic emits): `$ref` resolution, unions, object
fields, and the three walks over whole schemas that are not about decoding: the value check (`check_json`,
the server's response check), OpenAI's strict-mode test (`strict_compatible`) and the field list a prompt
describes (`fields`). Guided decoding (`_guided`) and the schema in words (`_structured`) walk through these
functions; nothing else follows a `$ref` or reads `anyOf` by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class SchemaRefError(ValueError):
    """A `$ref` that is not a local pointer, points nowhere, or loops."""


def deref(node: dict[str, Any], root: dict[str, Any], *, max_hops: int = 50) -> dict[str, Any]:
    """Follow `$ref` (a local JSON pointer such as `#/$defs/Name`) until a node without one; the keys
    beside a `$ref` are kept over the target's."""
    hops = 0
    while "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise SchemaRefError(f"reference {ref}")
        target: Any = root
        for part in ref[2:].split("/"):  # not a record key: a JSON pointer
            if not isinstance(target, dict) or part not in target:
                raise SchemaRefError(f"reference {ref}")
            target = target[part]
        if not isinstance(target, dict):
            raise SchemaRefError(f"reference {ref}")
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        hops += 1
        if hops > max_hops:
            raise SchemaRefError("reference cycle")
    return node


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """`deref`, then a one-member `allOf` (how pydantic wraps a referenced model with a description)
    merged into the node, repeatedly. Raises SchemaRefError."""
    node = deref(node, root)
    while "allOf" in node and len(node["allOf"]) == 1:
        extra = {k: v for k, v in node.items() if k != "allOf"}
        node = deref({**node["allOf"][0], **extra}, root)
    return node


def resolve_or_empty(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """`resolve` for walks that describe rather than enforce: a node it cannot follow is `{}` (no rules)."""
    if not isinstance(node, dict):
        return {}
    try:
        return resolve(node, root)
    except SchemaRefError:
        return {}


def alternatives(node: dict[str, Any]) -> list[Any] | None:
    """The members of a union (`anyOf`, else `oneOf`), or None when the node is not one."""
    for key in ("anyOf", "oneOf"):
        if key in node:
            return list(node[key])
    return None


def split_null(alts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """(the resolved members that are not `null`, whether one was `null`): an Optional is one member + null."""
    non_null = [a for a in alts if a.get("type") != "null"]
    return non_null, len(non_null) < len(alts)


@dataclass(frozen=True)
class Field:
    """One property of an object node, for a walk that describes fields."""

    path: str  # "name", "outer.inner", "items[].name"
    name: str
    node: dict[str, Any]  # the property's node, resolved (its own description, the union around the value)
    value: dict[str, Any]  # what the value is: the one non-null member of an Optional, else `node`
    required: bool


def fields(node: dict[str, Any], root: dict[str, Any], prefix: str = "", *, nested: bool = True) -> Iterator[Field]:
    """The properties of an object node in schema order; with `nested`, each followed by the fields of an
    object value (`outer.inner`) or of an array of objects (`outer[].inner`). Unresolvable nodes have none."""
    node = resolve_or_empty(node, root)
    required = set(node.get("required", []))
    for name, sub in (node.get("properties") or {}).items():
        sub = resolve_or_empty(sub, root)
        options, _ = split_null([resolve_or_empty(o, root) for o in sub.get("anyOf", [])])
        value = options[0] if len(options) == 1 else sub
        path = f"{prefix}{name}"
        yield Field(path, name, sub, value, name in required)
        if not nested:
            continue
        if value.get("type") == "object" and value.get("properties"):
            yield from fields(value, root, f"{path}.")
        items = resolve_or_empty(value.get("items"), root)
        if value.get("type") == "array" and items.get("properties"):
            yield from fields(items, root, f"{path}[].")


def nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every dict node of a schema, depth first (definitions included, references not followed)."""
    if isinstance(schema, dict):
        yield schema
        for v in schema.values():
            yield from nodes(v)
    elif isinstance(schema, list):
        for v in schema:
            yield from nodes(v)


def strict_compatible(schema: dict[str, Any]) -> bool:
    """OpenAI strict mode needs every object closed (additionalProperties false) with all keys required."""
    return all(
        n.get("additionalProperties") is False and set(n.get("required", [])) == set(n["properties"])
        for n in nodes(schema)
        if n.get("type") == "object" and "properties" in n
    )


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def check_json(value: Any, schema: Any, root: dict[str, Any], path: str = "$") -> str | None:
    """The first violation of a JSON-schema subset (type, enum, const, properties, required,
    additionalProperties, items, min/max, lengths, anyOf/oneOf/allOf, $ref to #/$defs), or None."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        try:
            node = deref(schema, root)
        except SchemaRefError:
            return None  # a reference this subset cannot follow constrains nothing here
        return check_json(value, node, root, path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            if all(check_json(value, s, root, path) for s in schema[key]):
                return f"{path}: matches none of the allowed forms"
    for s in schema.get("allOf", []):
        if p := check_json(value, s, root, path):
            return p
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_is_type(value, x) for x in types):
            return f"{path}: expected {'/'.join(types)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: must be one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: must be {schema['const']!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: must be <= {schema['maximum']}"
    if isinstance(value, (str, list)):
        lo = schema.get("minLength" if isinstance(value, str) else "minItems")
        hi = schema.get("maxLength" if isinstance(value, str) else "maxItems")
        if lo is not None and len(value) < lo:
            return f"{path}: too short (min {lo})"
        if hi is not None and len(value) > hi:
            return f"{path}: too long (max {hi})"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                return f"{path}.{req}: required"
        for k, v in value.items():
            if k in props:
                if p := check_json(v, props[k], root, f"{path}.{k}"):
                    return p
            elif schema.get("additionalProperties") is False:
                return f"{path}.{k}: not allowed"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            if p := check_json(v, schema["items"], root, f"{path}[{i}]"):
                return p
    return None


def _is_type(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    py = _TYPES.get(t)
    return py is not None and isinstance(value, py) and not (t != "boolean" and isinstance(value, bool))
