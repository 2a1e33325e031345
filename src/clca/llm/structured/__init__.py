"""Structured output: prompting with validation and re-asks, schema-guided decoding for the in-process
backend, and the one walker of JSON schemas (value check, strict-mode test, the fields a prompt lists)."""

from ._guided import guided_structured
from ._jsonschema import check_json, strict_compatible
from ._structured import extract_json, parse_as, schema_in_words, structured_by_reasking

__all__ = [
    "check_json",
    "extract_json",
    "guided_structured",
    "parse_as",
    "schema_in_words",
    "strict_compatible",
    "structured_by_reasking",
]
