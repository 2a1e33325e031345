"""GlobalOpinionQA as a survey: its questions become a questionnaire (each with its own options) and its
per-country answer shares a reference table.

Two layouts are read (JSONL, JSON list, CSV or Parquet):
  per question:   question, options | choices, selections (country -> one share per option; also the
                  "defaultdict(<class 'list'>, {...})" text of the published dataset), optional id, choice_keys,
                  source
  per (country, question): country, question, options | choices, distribution (one share per option, or a
                  mapping option -> share), optional id, choice_keys, source
Questions without an `id` get a stable one from their text ("GO-" + 10 hex digits).

Rules: an entry (one country, one question) whose shares are all zero or missing is skipped and counted, never
rejecting the file; a NaN, infinite, negative or boolean share rejects the file with its name and the line the
record starts on (CSV lines are physical lines, so multi-line quoted fields count). "Don't know"/"Refused"
options are kept as in the dataset (`unsure="keep"`, default) or dropped with the shares renormalised
(`unsure="drop"`). Country names go through `resolve_country` (country_converter plus Pew's spellings).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .._files import check_input_file, check_nesting, iter_jsonl, load_json
from ..errors import ConfigError, DataError
from ._countries import country_name, resolve_country
from ._questionnaire import Item, Questionnaire
from ._reference import CountryReference, Distribution, ReferenceTable

Unsure = Literal["keep", "drop"]
UNSURE_OPTION = re.compile(
    r"^\W*(don.?t know|do not know|dk\b|refused|refuse\b|no answer|decline[sd]? to answer|not sure|prefer not)", re.I
)
_NAN_TOKEN = re.compile(r"(?<![\w'\"])(-?(?:nan|inf(?:inity)?))(?![\w'\"])", re.I)
_NAN_MARK = "__clca_nonfinite__:"


class OpinionQuestion(BaseModel):
    id: str
    question: str
    options: list[str]
    keys: list[int]
    line: int
    source: str = ""


class SkippedEntry(BaseModel):
    line: int
    question: str
    country: str
    reason: str


class OpinionSurvey(BaseModel):
    """A GlobalOpinionQA file read as a survey."""

    source: str
    questionnaire: Questionnaire
    reference: ReferenceTable
    unsure: Unsure = "keep"
    skipped: list[SkippedEntry] = Field(default_factory=list)
    dropped_options: int = 0
    unresolved_countries: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        detail = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        line = (
            f"GlobalOpinionQA {Path(self.source).name}: {len(self.questionnaire)} questions, "
            f"{len(self.reference.countries)} countries; {len(self.skipped)} entries skipped"
            + (f" ({detail})" if detail else "")
        )
        if self.unsure == "drop":
            line += f'; {self.dropped_options} "Don\'t know"/"Refused" options dropped and shares renormalised'
        if self.unresolved_countries:
            line += f"; country names kept as written: {', '.join(self.unresolved_countries[:5])}"
        return line + "\n"


# ------------------------------------------------------------------------------------------------ records
def _records(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line the record starts on, record) for JSONL, a JSON list, CSV or Parquet ("line" = row for Parquet)."""
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
    yield from iter_jsonl(text.splitlines(), str(p), objects=True)


def _csv_records(p: Path, text: str, delim: str) -> Iterator[tuple[int, dict[str, Any]]]:
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
                raise DataError(f"{p}: line {start}: {len(row)} fields, header has {len(header)}")
            yield start, dict(zip(header, row, strict=True))
    except csv.Error as e:
        raise DataError(f"{p}: line {reader.line_num}: {e}") from e


def _json_list_records(p: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
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
            raise DataError(f"{p}: line {line}: expected a JSON object")
        yield line, rec


def _parquet_records(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
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


# ------------------------------------------------------------------------------------------------ questions
def _option_text(o: Any) -> str:
    if isinstance(o, float) and o.is_integer():
        return str(int(o))
    return str(o).strip()


def _match_key(o: Any) -> str:
    """Option text for matching distribution keys: "3", 3, 3.0 and "3.0" are the same option."""
    t = _option_text(o)
    if re.fullmatch(r"-?\d+\.0+", t):
        return t.split(".")[0]
    return t.casefold()


def _question(p: Path, line: int, rec: dict[str, Any]) -> OpinionQuestion:
    q = rec.get("question")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{p}: line {line}: missing field 'question'")
    raw_opts = rec.get("options", rec.get("choices"))
    if raw_opts is None or raw_opts == "":
        raise DataError(f"{p}: line {line}: missing field 'options' (or 'choices')")
    opts = [_option_text(o) for o in _listish(p, line, "options", raw_opts)]
    if len(opts) < 2:
        raise DataError(f"{p}: line {line}: needs at least two options")
    if any(not o for o in opts):
        raise DataError(f"{p}: line {line}: field 'options': an option is empty")
    keys_raw = rec.get("choice_keys")
    if keys_raw is None or keys_raw == "":
        keys = list(range(1, len(opts) + 1))
    else:
        ks = _listish(p, line, "choice_keys", keys_raw)
        try:
            keys = [int(k) for k in ks]
        except (TypeError, ValueError):
            raise DataError(f"{p}: line {line}: field 'choice_keys': not integers") from None
        if len(keys) != len(opts) or len(set(keys)) != len(keys) or min(keys) < 0:
            raise DataError(f"{p}: line {line}: 'choice_keys' must give one distinct code >= 0 per option")
    rid = rec.get("id")
    if isinstance(rid, str) and rid.strip().startswith("["):
        rid = _listish(p, line, "id", rid)
    if isinstance(rid, list):  # multi-wave ids: the first is the WVS-7 one
        rid = rid[0] if rid else None
    qid = str(rid).strip() if rid not in (None, "") else "GO-" + hashlib.sha1(q.strip().encode()).hexdigest()[:10]
    return OpinionQuestion(id=qid, question=q.strip(), options=opts, keys=keys, line=line,
                           source=str(rec.get("source") or ""))  # fmt: skip


def load_opinion_questions(path: str | Path) -> list[OpinionQuestion]:
    """Question records (id, options, option codes) of a GlobalOpinionQA-style file, once per question."""
    p = Path(path)
    out: dict[str, OpinionQuestion] = {}
    for line, rec in _records(p):
        q = _question(p, line, rec)
        out.setdefault(q.id, q)
    if not out:
        raise DataError(f"{p}: no question records")
    return list(out.values())


# ------------------------------------------------------------------------------------------------ shares
def _shares(p: Path, line: int, where: str, raw: Any, q: OpinionQuestion) -> list[float] | None:
    """One share per option, validated; None when missing (skipped by the caller)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        raw = _parse_text(p, line, "distribution", raw)
    if isinstance(raw, dict):
        by_label = {_match_key(o): k for k, o in enumerate(q.options)}
        vals: list[Any] = [0.0] * len(q.options)
        for key, v in raw.items():
            k = by_label.get(_match_key(key))
            if k is None and re.fullmatch(r"\d+", _option_text(key)) and int(_option_text(key)) in q.keys:
                k = q.keys.index(int(_option_text(key)))
            if k is None:
                raise DataError(f"{p}: line {line}: {where}: {key!r} is not one of the question's options")
            vals[k] = v
        raw = vals
    if not isinstance(raw, (list, tuple)):
        raise DataError(f"{p}: line {line}: {where}: shares must be a list (one per option)")
    if not raw:
        return None
    if len(raw) != len(q.options):
        raise DataError(f"{p}: line {line}: {where}: {len(q.options)} shares expected, found {len(raw)}")
    out = []
    for x in raw:
        if isinstance(x, bool):
            raise DataError(f"{p}: line {line}: {where}: boolean share {x!r} (shares must be numbers)")
        if isinstance(x, str) and x.startswith(_NAN_MARK):
            x = float(x[len(_NAN_MARK) :])
        if not isinstance(x, (int, float)):
            raise DataError(f"{p}: line {line}: {where}: share {x!r} is not a number")
        f = float(x)
        if not math.isfinite(f):
            raise DataError(f"{p}: line {line}: {where}: share {f} is not a finite number")
        if f < 0:
            raise DataError(f"{p}: line {line}: {where}: negative share {f}")
        out.append(f)
    return out


def _selections(p: Path, line: int, v: Any) -> dict[str, Any]:
    if isinstance(v, str):
        v = _parse_text(p, line, "selections", v)
    if not isinstance(v, dict):
        raise DataError(f"{p}: line {line}: field 'selections' must map country -> shares")
    return v


class _Builder:
    def __init__(self, p: Path, unsure: Unsure) -> None:
        self.p = p
        self.unsure = unsure
        self.questions: dict[str, OpinionQuestion] = {}
        self.kept: dict[str, list[int]] = {}  # question id -> indexes of the options kept
        self.table = ReferenceTable(note=f"from {p.name} (GlobalOpinionQA format)")
        self.skipped: list[SkippedEntry] = []
        self.unresolved: set[str] = set()
        self.dropped_options = 0

    def question(self, line: int, rec: dict[str, Any]) -> OpinionQuestion:
        q = _question(self.p, line, rec)
        old = self.questions.get(q.id)
        if old is None:
            self.questions[q.id] = q
            keep = list(range(len(q.options)))
            if self.unsure == "drop":
                keep = [k for k, o in enumerate(q.options) if not UNSURE_OPTION.match(o)]
                self.dropped_options += len(q.options) - len(keep)
            self.kept[q.id] = keep
            return q
        if old.options != q.options or old.keys != q.keys:
            raise DataError(f"{self.p}: line {line}: question {q.id}: options differ from line {old.line}")
        return old

    def entry(self, line: int, q: OpinionQuestion, cname: Any, raw: Any) -> None:
        cname = str(cname).strip()
        if not cname:
            raise DataError(f"{self.p}: line {line}: question {q.id}: empty country name")
        vals = _shares(self.p, line, f"country {cname!r}", raw, q)
        if vals is None:
            self.skipped.append(SkippedEntry(line=line, question=q.id, country=cname, reason="missing shares"))
            return
        keep = self.kept[q.id]
        if len(keep) < 2:
            self.skipped.append(SkippedEntry(line=line, question=q.id, country=cname,
                                             reason="fewer than two options left"))  # fmt: skip
            return
        total = sum(vals[k] for k in keep)
        if total <= 0:
            reason = "all-zero shares" if sum(vals) <= 0 else "only 'Don't know'/'Refused' shares"
            self.skipped.append(SkippedEntry(line=line, question=q.id, country=cname, reason=reason))
            return
        try:
            iso = resolve_country(cname)
        except ConfigError:
            iso = cname
            self.unresolved.add(cname)
        ref = self.table.countries.setdefault(iso, CountryReference(name=country_name(iso)))
        if q.id in ref.items:
            self.skipped.append(SkippedEntry(line=line, question=q.id, country=cname,
                                             reason=f"duplicate entries for {iso}"))  # fmt: skip
            return
        order = sorted(keep, key=lambda k: q.keys[k])
        ref.items[q.id] = Distribution(codes=[q.keys[k] for k in order], shares=[vals[k] / total for k in order],
                                       n=0, source=self.p.name)  # fmt: skip

    def result(self) -> OpinionSurvey:
        items = []
        for q in self.questions.values():
            keep = sorted(self.kept[q.id], key=lambda k: q.keys[k])
            if len(keep) < 2:
                continue
            items.append(Item(id=q.id, theme=q.source or "GlobalOpinionQA", text=q.question,
                              options={q.keys[k]: q.options[k] for k in keep}, kind="categorical"))  # fmt: skip
        if not items:
            raise DataError(f"{self.p}: no question with at least two options")
        quest = Questionnaire(language="en", name=f"GlobalOpinionQA ({self.p.name})", source=str(self.p), items=items)
        self.table.countries = dict(sorted(self.table.countries.items()))
        return OpinionSurvey(source=str(self.p), questionnaire=quest, reference=self.table, unsure=self.unsure,
                             skipped=self.skipped, dropped_options=self.dropped_options,
                             unresolved_countries=sorted(self.unresolved))  # fmt: skip


def load_opinion_survey(path: str | Path, unsure: Unsure = "keep") -> OpinionSurvey:
    """A GlobalOpinionQA file (either layout) as questionnaire + per-country reference; see the module doc."""
    if unsure not in ("keep", "drop"):
        raise ConfigError(f"unsure: {unsure!r} is not one of keep, drop")
    p = Path(path)
    b = _Builder(p, unsure)
    for line, rec in _records(p):
        if "selections" in rec:
            q = b.question(line, rec)
            for cname, raw in _selections(p, line, rec["selections"]).items():
                b.entry(line, q, cname, raw)
        elif "distribution" in rec:
            if "country" not in rec:
                raise DataError(f"{p}: line {line}: a 'distribution' record needs a 'country' field")
            q = b.question(line, rec)
            b.entry(line, q, rec["country"], rec["distribution"])
        else:
            raise DataError(
                f"{p}: line {line}: no 'selections' (country -> shares) or 'distribution' (with 'country'); "
                "is this a question-only file?"
            )
    if not b.questions:
        raise DataError(f"{p}: no records")
    return b.result()


def load_global_opinions(path: str | Path, unsure: Unsure = "keep") -> ReferenceTable:
    """Per-country answer distributions of a GlobalOpinionQA-style file (items keyed by `id`)."""
    return load_opinion_survey(path, unsure).reference
