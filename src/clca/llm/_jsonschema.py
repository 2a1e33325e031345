"""The one `$ref` resolver of the JSON schemas clca walks (guided decoding, the server's response check)."""

from __future__ import annotations

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
        for part in ref[2:].split("/"):
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
