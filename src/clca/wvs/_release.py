"""WVS release files as a stream of rows: the CSV (numeric codes or the `;` labelled export), SPSS `.sav`,
Stata `.dta` (both via pyreadstat, read in chunks of only the needed columns) and R `.rds` (via pyreadr).

A `Release` names its columns and value labels (code -> label per variable, from the file where it has them,
or from a separate labels file) and yields, for the columns asked for, one tuple of cells per respondent with
the place of the row ("line N" for CSV, counting physical lines; "row N" for the binary formats). Cells are
text (CSV, string variables, R factors), numbers, or None (missing / system-missing / absent column).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._files import check_input_file, load_json, read_text
from ..errors import DataError

Kind = Literal["csv", "sav", "dta", "rds"]
Cell = str | float | int | None
CHUNK_ROWS = 10_000
_SUFFIXES: dict[str, Kind] = {".csv": "csv", ".txt": "csv", ".sav": "sav", ".zsav": "sav", ".dta": "dta", ".rds": "rds"}


@dataclass
class Release:
    """One respondent file; `labelled` = text cells are answer labels (labelled export, R factors)."""

    path: Path
    kind: Kind
    columns: list[str]
    labels: dict[str, dict[int, str]] = field(default_factory=dict)
    labelled: bool = False
    rows_total: int | None = None  # known up front for .sav/.dta/.rds
    size: int = 0  # bytes (progress unit for CSV)
    delimiter: str = ","
    _header: list[str] = field(default_factory=list)
    # a row that cannot be read (a CSV line with the wrong number of fields): given to this callback and left
    # out; without one it is raised (the file refused)
    on_problem: Callable[[DataError], None] | None = None

    def rows(
        self, wanted: list[str], progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[str, list[Cell]]]:
        """(place, cells of `wanted` in order; None for a column the file lacks) for every data row."""
        if self.kind == "csv":
            yield from self._csv_rows(wanted, progress)
        elif self.kind in ("sav", "dta"):
            yield from self._stat_rows(wanted, progress)
        else:
            yield from self._rds_rows(wanted, progress)

    def _csv_rows(self, wanted: list[str], progress: Callable[[int], None] | None) -> Iterator[tuple[str, list[Cell]]]:
        idx = {c: k for k, c in enumerate(self.columns) if c}
        pick = [idx.get(c) for c in wanted]
        counted = [0]

        def lines(fh: Any) -> Iterator[str]:
            for line in fh:
                counted[0] += len(line)
                yield line

        with self.path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(lines(fh), delimiter=self.delimiter)
            next(reader)
            n = len(self.columns)
            done = 0
            for row in reader:
                line = reader.line_num
                if progress is not None and counted[0] - done >= 1 << 20:
                    progress(counted[0] - done)
                    done = counted[0]
                if not any(c.strip() for c in row):
                    continue
                if len(row) != n:
                    err = DataError(f"{self.path}: line {line}: {len(row)} fields, header has {n}")
                    if self.on_problem is None:
                        raise err
                    self.on_problem(err)
                    continue
                yield f"line {line}", [None if k is None else row[k] for k in pick]
            if progress is not None:
                progress(counted[0] - done)

    def _stat_rows(self, wanted: list[str], progress: Callable[[int], None] | None) -> Iterator[tuple[str, list[Cell]]]:
        import pyreadstat

        have = [c for c in wanted if c in set(self.columns)]
        read = pyreadstat.read_sav if self.kind == "sav" else pyreadstat.read_dta
        start = 0
        try:
            for df, _meta in pyreadstat.read_file_in_chunks(read, str(self.path), chunksize=CHUNK_ROWS, usecols=have):
                yield from _frame_rows(df, wanted, start)
                start += len(df)
                if progress is not None:
                    progress(len(df))
        except pyreadstat.ReadstatError as e:
            raise DataError(f"{self.path}: cannot read {self.kind} file ({e})") from e

    def _rds_rows(self, wanted: list[str], progress: Callable[[int], None] | None) -> Iterator[tuple[str, list[Cell]]]:
        df = _read_rds(self.path)
        have = [c for c in wanted if c in df.columns]
        df = df[have]
        yield from _frame_rows(df, wanted, 0)
        if progress is not None:
            progress(len(df))


def _frame_rows(df: Any, wanted: list[str], start: int) -> Iterator[tuple[str, list[Cell]]]:
    import pandas as pd

    cols = []
    for c in wanted:
        if c not in df.columns:
            cols.append(None)
            continue
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        cols.append(s.where(s.notna(), None).tolist())
    for k in range(len(df)):
        yield f"row {start + k + 1}", [None if col is None else col[k] for col in cols]


def _read_rds(p: Path) -> Any:
    import pyreadr
    from pyreadr.custom_errors import LibrdataError, PyreadrError

    try:
        objs = pyreadr.read_r(str(p))
    except (LibrdataError, PyreadrError, ValueError, OSError) as e:
        raise DataError(f"{p}: cannot read R data file ({e})") from e
    frames = [v for v in objs.values() if v is not None and hasattr(v, "columns")]
    if len(frames) != 1:
        raise DataError(f"{p}: expected one data frame in the R file, found {len(frames)}")
    return frames[0]


def open_release(path: str | Path, labels: str | Path | None = None) -> Release:
    """Open a respondent file: the format from the suffix (CSV for anything else), columns and value labels."""
    p = Path(path)
    kind = _SUFFIXES.get(p.suffix.lower(), "csv")
    if not p.exists():
        raise DataError(f"{p}: no such file")
    check_input_file(p, "survey file", max_bytes=1 << 40)  # streamed: only devices and FIFOs are refused
    rel = _open_csv(p) if kind == "csv" else _open_stat(p, kind) if kind != "rds" else _open_rds(p)
    if labels is not None:
        for var, table in load_value_labels(labels).items():
            rel.labels.setdefault(var, table)
    return rel


def _open_csv(p: Path) -> Release:
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not a UTF-8 text file") from e
    if not first.strip():
        raise DataError(f"{p}: empty file")
    delim = ";" if first.count(";") > first.count(",") else ","
    header = next(csv.reader([first], delimiter=delim))
    if len(header) < 2:
        raise DataError(
            f"{p}: line 1 has a single column; expected a ',' (numeric WVS CSV) or ';' (labelled export) delimiter"
        )
    labelled = any(re.match(r"^[A-Z][A-Z0-9_]* \S", h) for h in header)
    codes = [h.strip().split(" ", 1)[0] if labelled else h.strip() for h in header]
    seen: dict[str, int] = {}
    for k, c in enumerate(codes, 1):
        if c and c in seen:
            raise DataError(
                f"{p}: line 1: column {c[:60]!r} appears twice (columns {seen[c]} and {k}); remove or rename one"
            )
        seen.setdefault(c, k)
    return Release(p, "csv", codes, labelled=labelled, size=p.stat().st_size, delimiter=delim, _header=header)


def _open_stat(p: Path, kind: Kind) -> Release:
    import pyreadstat

    read = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
    try:
        _, meta = read(str(p), metadataonly=True)
    except pyreadstat.ReadstatError as e:
        raise DataError(f"{p}: not a readable {kind} file ({e})") from e
    return Release(p, kind, list(meta.column_names), labels=_int_labels(meta.variable_value_labels),
                   rows_total=meta.number_rows, size=p.stat().st_size)  # fmt: skip


def _open_rds(p: Path) -> Release:
    df = _read_rds(p)
    return Release(p, "rds", [str(c) for c in df.columns], labelled=True, rows_total=len(df), size=p.stat().st_size)


def _int_labels(raw: dict[str, dict[Any, str]]) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for var, table in raw.items():
        conv = {}
        for code, label in table.items():
            try:
                f = float(code)
            except (TypeError, ValueError):
                continue
            if math.isfinite(f) and f.is_integer():
                conv[int(f)] = str(label)
        if conv:
            out[var] = conv
    return out


def load_value_labels(path: str | Path) -> dict[str, dict[int, str]]:
    """Value labels for a numeric CSV: from a `.sav`/`.dta` of the same release (metadata only, fast) or a JSON
    mapping variable -> {code: label} (a codebook with `{"choices": {...}}` per variable also works)."""
    p = Path(path)
    kind = _SUFFIXES.get(p.suffix.lower())
    if kind in ("sav", "dta"):
        return _open_stat(p, kind).labels
    try:
        raw = load_json(read_text(p, "labels file"), str(p))
    except OSError as e:
        raise DataError(f"{p}: cannot read labels file ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict):
        raise DataError(f"{p}: a labels file maps variable -> {{code: label}}")
    table = {}
    for var, v in raw.items():
        if isinstance(v, dict) and isinstance(v.get("choices"), dict):
            v = v["choices"]
        if isinstance(v, dict):
            table[str(var)] = v
    return _int_labels(table)
