"""One `$ref` resolver (llm/_jsonschema.py) for guided decoding and the server's response check."""

from __future__ import annotations

import pytest

from clca.llm._guided import UnsupportedSchema, _resolve
from clca.llm._jsonschema import SchemaRefError, deref
from clca.llm._server import check_json


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
