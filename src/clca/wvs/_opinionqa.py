"""The GlobalOpinionQA format: one record per question with its options and per-country answer shares.

Accepted records (JSONL, JSON list or CSV), fields:
  id (optional; e.g. "Q27")  question  options | choices (list, or its Python/JSON text)
  choice_keys (optional, the code of each option; default 1..K)
  selections (country name -> list of shares, one per option; also "defaultdict(<class 'list'>, {...})" text)
Question-only files (no `selections`, e.g. translated or option-shuffled item lists) load with
`load_opinion_questions`.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError, DataError
from ._countries import country_name, resolve_country
from ._reference import CountryReference, Distribution, ReferenceTable


class OpinionQuestion(BaseModel):
    id: str
    question: str
    options: list[str]
    keys: list[int]
    line: int


def _records(p: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from e
    if p.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        return [(k + 2, r) for k, r in enumerate(rows)]
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from e
        return [(k + 1, r) for k, r in enumerate(data)]
    out = []
    for k, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: line {k}: not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict):
            raise DataError(f"{p}: line {k}: expected a JSON object")
        out.append((k, rec))
    return out


def _listish(p: Path, line: int, field: str, v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        try:
            parsed = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            raise DataError(f"{p}: line {line}: field {field!r}: not a list: {v[:60]!r}") from None
        if isinstance(parsed, (list, tuple)):
            return list(parsed)
    raise DataError(f"{p}: line {line}: field {field!r}: not a list")


def _question(p: Path, line: int, rec: dict[str, Any]) -> OpinionQuestion:
    q = rec.get("question")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{p}: line {line}: missing field 'question'")
    raw_opts = rec.get("options", rec.get("choices"))
    if raw_opts is None:
        raise DataError(f"{p}: line {line}: missing field 'options' (or 'choices')")
    opts = [str(o) for o in _listish(p, line, "options", raw_opts)]
    if len(opts) < 2:
        raise DataError(f"{p}: line {line}: needs at least two options")
    keys_raw = rec.get("choice_keys")
    if keys_raw is None:
        keys = list(range(1, len(opts) + 1))
    else:
        ks = _listish(p, line, "choice_keys", keys_raw)
        try:
            keys = [int(k) for k in ks]
        except (TypeError, ValueError):
            raise DataError(f"{p}: line {line}: field 'choice_keys': not integers") from None
        if len(keys) != len(opts) or len(set(keys)) != len(keys):
            raise DataError(f"{p}: line {line}: 'choice_keys' must give one distinct code per option")
    rid = rec.get("id")
    if isinstance(rid, list):  # multi-wave ids: the first is the WVS-7 one
        rid = rid[0] if rid else None
    return OpinionQuestion(id=str(rid) if rid else f"GO{line}", question=q, options=opts, keys=keys, line=line)


def load_opinion_questions(path: str | Path) -> list[OpinionQuestion]:
    """Question records (id, options, option codes) of a GlobalOpinionQA-style file."""
    p = Path(path)
    out = [_question(p, line, rec) for line, rec in _records(p)]
    if not out:
        raise DataError(f"{p}: no question records")
    return out


def _selections(p: Path, line: int, v: Any) -> dict[str, list[float]]:
    if isinstance(v, str):
        s = re.sub(r"^defaultdict\(<class '\w+'>,\s*", "", v.strip())
        s = s[:-1] if s.endswith(")") and s != v.strip() else s
        try:
            v = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            raise DataError(f"{p}: line {line}: field 'selections': cannot parse {v[:60]!r}") from None
    if not isinstance(v, dict) or not v:
        raise DataError(f"{p}: line {line}: field 'selections' must map country -> shares")
    return v


def load_global_opinions(path: str | Path) -> ReferenceTable:
    """Per-country answer distributions from a GlobalOpinionQA-style file (items keyed by `id`)."""
    p = Path(path)
    table = ReferenceTable(note=f"from {p.name} (GlobalOpinionQA format)")
    for line, rec in _records(p):
        q = _question(p, line, rec)
        if "selections" not in rec:
            raise DataError(f"{p}: line {line}: no 'selections' (per-country shares); is this a question-only file?")
        order = sorted(range(len(q.keys)), key=lambda k: q.keys[k])
        for cname, shares in _selections(p, line, rec["selections"]).items():
            if not isinstance(shares, (list, tuple)) or len(shares) != len(q.options):
                raise DataError(f"{p}: line {line}: country {cname!r}: {len(q.options)} shares expected")
            try:
                vals = [float(x) for x in shares]
            except (TypeError, ValueError):
                raise DataError(f"{p}: line {line}: country {cname!r}: shares must be numbers") from None
            total = sum(vals)
            if total <= 0 or any(x < 0 for x in vals):
                raise DataError(f"{p}: line {line}: country {cname!r}: shares must be >= 0 with a positive sum")
            try:
                iso = resolve_country(cname)
            except ConfigError:
                iso = cname
            ref = table.countries.setdefault(iso, CountryReference(name=country_name(iso)))
            ref.items[q.id] = Distribution(
                codes=[q.keys[k] for k in order], shares=[vals[k] / total for k in order], n=0, source=p.name
            )
    if not table.countries:
        raise DataError(f"{p}: no records")
    return table
