"""Reading a GlobalOpinionQA-style file's records (JSONL, a JSON list, CSV or Parquet) with the line each starts
on; a line that cannot be read is yielded as its DataError (the loader leaves it out and reports it, or raises
it when strict). Also the parsing of list/dict fields written as Python or JSON text."""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._files import check_input_file, check_nesting, iter_jsonl, load_json
from ..errors import DataError

_NAN_TOKEN = re.compile(r"(?<![\w'\"])(-?(?:nan|inf(?:inity)?))(?![\w'\"])", re.I)
_NAN_MARK = "__clca_nonfinite__:"


Rec = dict[str, Any] | DataError  # a record, or the problem of the line it would start on


def _records(p: Path) -> Iterator[tuple[int, Rec]]:
    """(line the record starts on, record or its problem) for JSONL, a JSON list, CSV or Parquet ("line" = row
    for Parquet). A JSON list that stops parsing is refused whole (nothing after the break can be found)."""
    suffix = p.suffix.lower()
    check_input_file(p, "GlobalOpinionQA file")
    if suffix == ".parquet":
        yield from _parquet_records(p)
        return
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from e
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a UTF-8 text file") from None
    if suffix in (".csv", ".tsv"):
        yield from _csv_records(p, text, "\t" if suffix == ".tsv" else ",")
        return
    check_nesting(text, str(p))
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _json_list_records(p, text)
        return
    for n, line in enumerate(text.splitlines(), 1):
        try:
            yield from ((n, rec) for _, rec in iter_jsonl([line], str(p), objects=True))
        except DataError as e:  # iter_jsonl counts from 1: give this line's number
            yield n, DataError(str(e).replace(f"{p}: line 1:", f"{p}: line {n}:", 1))


def _csv_records(p: Path, text: str, delim: str) -> Iterator[tuple[int, Rec]]:
    import io

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    last = reader.line_num
    try:
        for row in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                yield start, DataError(f"{p}: line {start}: {len(row)} fields, header has {len(header)}")
                continue
            yield start, dict(zip(header, row, strict=True))
    except csv.Error as e:
        raise DataError(f"{p}: line {reader.line_num}: {e}") from e


def _json_list_records(p: Path, text: str) -> Iterator[tuple[int, Rec]]:
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            raise DataError(f"{p}: line {text.count(chr(10)) + 1}: unterminated JSON list")
        if text[i] == "]":
            return
        line = text.count("\n", 0, i) + 1
        try:
            rec, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict):
            yield line, DataError(f"{p}: line {line}: expected a JSON object")
            continue
        yield line, rec


def _parquet_records(p: Path) -> Iterator[tuple[int, Rec]]:
    import pandas as pd

    try:
        df = pd.read_parquet(p)
    except (OSError, ValueError, ImportError) as e:
        raise DataError(f"{p}: cannot read Parquet file ({e})") from e
    for k, rec in enumerate(df.to_dict(orient="records"), start=1):
        yield k, {key: (v.tolist() if hasattr(v, "tolist") else v) for key, v in rec.items()}


def _parse_text(p: Path, line: int, field: str, v: str) -> Any:
    """A list/dict written as Python or JSON text; bare nan/inf tokens become markers rejected later."""
    s = v.strip()
    s = re.sub(r"^defaultdict\(<class '\w+'>,\s*(.*)\)$", r"\1", s, flags=re.S)
    for text in (s, _NAN_TOKEN.sub(lambda m: repr(_NAN_MARK + m.group(1)), s)):  # as written, then nan/inf marked
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    try:
        return load_json(s, f"{p}: line {line}: field {field!r}")
    except json.JSONDecodeError:
        raise DataError(f"{p}: line {line}: field {field!r}: cannot parse {v[:60]!r}") from None


def _listish(p: Path, line: int, field: str, v: Any) -> list[Any]:
    if isinstance(v, str):
        v = _parse_text(p, line, field, v)
    if isinstance(v, (list, tuple)):
        return list(v)
    raise DataError(f"{p}: line {line}: field {field!r}: not a list")
