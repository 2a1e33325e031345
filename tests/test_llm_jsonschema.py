"""One owner of JSON-schema walking (llm/structured/_jsonschema.py): guided decoding, the schema in words, the server's
response check and the strict-mode test resolve `$ref`s and list fields the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from clca.llm.structured import check_json, schema_in_words
from clca.llm.structured._guided import UnsupportedSchema, _resolve
from clca.llm.structured._jsonschema import SchemaRefError, deref, fields, resolve, resolve_or_empty, strict_compatible


def test_one_ref_resolver_for_every_schema_walker() -> None:
    root = {"$defs": {"A": {"type": "object", "title": "A"}, "B": {"$ref": "#/$defs/A"}, "L": {"$ref": "#/$defs/L"}}}
    assert deref({"$ref": "#/$defs/B", "title": "kept"}, root) == {"type": "object", "title": "kept"}
    assert _resolve({"$ref": "#/$defs/B"}, root["$defs"]) == {"type": "object", "title": "A"}
    for bad in ("#/$defs/nope", "http://x/s.json", "#/$defs/L"):
        with pytest.raises(SchemaRefError):
            deref({"$ref": bad}, root)
        with pytest.raises(UnsupportedSchema):
            _resolve({"$ref": bad}, root["$defs"])
    # the server's check follows the same pointers (and accepts what it cannot resolve, as before)
    schema = {**root, "type": "object", "properties": {"x": {"$ref": "#/$defs/B"}}}
    assert check_json({"x": {}}, schema, schema) is None
    assert "object" in (check_json({"x": 3}, schema, schema) or "")
    assert check_json({"x": 3}, {"properties": {"x": {"$ref": "#/$defs/none"}}}, {}) is None


def test_the_walks_share_one_resolver_and_one_field_list() -> None:
    class Inner(BaseModel):
        """The inner docstring."""

        x: int = Field(ge=0, le=3)

    class Outer(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = Field(description="the name")
        inner: Inner | None = None
        many: list[Inner] = Field(default_factory=list)

    js = Outer.model_json_schema()
    found = [(f.path, f.value.get("type"), f.required) for f in fields(js, js)]
    assert found == [
        ("name", "string", True),
        ("inner", "object", False),  # the one non-null member of the Optional
        ("inner.x", "integer", True),
        ("many", "array", False),
        ("many[].x", "integer", True),
    ]
    assert [f.path for f in fields(js, js, nested=False)] == ["name", "inner", "many"]
    # a one-member allOf is merged like a $ref; the keys beside it win
    root = {"$defs": {"A": {"type": "string", "description": "a"}}}
    assert resolve({"allOf": [{"$ref": "#/$defs/A"}], "description": "b"}, root) == {
        "type": "string",
        "description": "b",
    }
    assert resolve_or_empty({"$ref": "#/$defs/none"}, root) == {}
    assert not strict_compatible(js)  # Inner is not closed
    closed = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert strict_compatible(closed) and not strict_compatible({**closed, "required": []})
    # the schema in words and the guided field list are both made from this field list
    words = schema_in_words(Outer)
    assert all(f'"{p}"' in words for p, _, _ in found)
    assert '"inner.x" (integer, required; at least 0; at most 3)' in words


def test_nothing_else_walks_json_schemas_by_hand() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "clca"
    hand = sorted(
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if re.search(r"""["'](\$ref|anyOf|oneOf|allOf)["']""", p.read_text(encoding="utf-8"))
    )
    assert hand == ["llm/structured/_jsonschema.py"], hand
