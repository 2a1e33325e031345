"""Reading and writing scenario files (JSONL); seeds shipped with the package. Norm files: `_norms`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._files import atomic_file, check_output_file, iter_jsonl, read_text
from ..errors import DataError
from ._schema import Scenario

SEEDS_FILE = "data/seeds/seeds.jsonl"


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(root)"
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"field '{loc}': {msg}"


def iter_json_records(lines: Iterable[str], where: str, *, objects: bool = False) -> Iterator[tuple[int, Any]]:
    """(record number, parsed JSON) per non-blank JSONL line; errors name the record number."""
    return iter_jsonl(lines, where, unit="record", objects=objects)


def _parse_scenarios(lines: Iterable[str], where: str) -> list[Scenario]:
    out: list[Scenario] = []
    for n, raw in iter_json_records(lines, where):
        try:
            out.append(Scenario.model_validate(raw))
        except ValidationError as e:
            raise DataError(f"{where}: record {n}: {_first_error(e)}") from None
    return out


def read_scenarios(path: str | Path) -> list[Scenario]:
    """Scenarios from a JSONL file (one Scenario per line); errors name the record number and field."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: scenario file not found")
    scenarios = _parse_scenarios(read_text(p, "scenario file").splitlines(), str(p))
    if not scenarios:
        raise DataError(f"{p}: no scenario records (the file is empty)")
    return scenarios


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]], inputs: Iterable[str | Path | None] = ()) -> int:
    """Write records as JSONL atomically (temp file in the same folder, then rename). Returns the count.
    The output policy (clca._outputs) refuses a run database, an input or a folder first."""
    p = Path(path)
    check_output_file(p, inputs)
    n = 0
    with atomic_file(p) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_scenarios(path: str | Path, scenarios: Iterable[Scenario], inputs: Iterable[str | Path | None] = ()) -> int:
    return write_jsonl(path, (s.model_dump(mode="json") for s in scenarios), inputs)


def load_seeds(path: str | Path | None = None, ids: Iterable[str] | None = None) -> list[Scenario]:
    """The shipped seed scenarios (or those of a JSONL file), optionally only the given ids, in file order."""
    if path is None:
        text = resources.files("clca").joinpath(SEEDS_FILE).read_text(encoding="utf-8")
        seeds = _parse_scenarios(text.splitlines(), SEEDS_FILE)
    else:
        seeds = read_scenarios(path)
    if ids is None:
        return seeds
    wanted = list(ids)
    by_id = {s.provenance.id: s for s in seeds}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise DataError(f"unknown seed id(s): {', '.join(missing)} (seed ids look like {seeds[0].provenance.id})")
    return [by_id[i] for i in wanted]
