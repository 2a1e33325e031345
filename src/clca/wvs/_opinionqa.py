"""GlobalOpinionQA as a survey: its questions become a questionnaire (each with its own options) and its
per-country answer shares a reference table.

Two layouts are read (JSONL, JSON list, CSV or Parquet):
  per question:   question, options | choices, selections (country -> one share per option; also the
                  "defaultdict(<class 'list'>, {...})" text of the published dataset), optional id, choice_keys,
                  source
  per (country, question): country, question, options | choices, distribution (one share per option, or a
                  mapping option -> share), optional id, choice_keys, source
Questions without an `id` get a stable one from their text ("GO-" + 10 hex digits).

Questions that recur (the same id, or the same text when ids are derived from it) with different option
lists, as the released dataset's questions do across survey waves and sources:
  - aligned: when the lists differ only by non-substantive options ("Don't know", "Refused", "No answer";
    `UNSURE_OPTION`), the records are one question whose options are the union, first list first; a country
    whose survey did not offer an option has share 0 for it (`OpinionSurvey.aligned` names them);
  - variants: otherwise each option list is its own question, keyed by question and options: the first list
    keeps the id, each other one gets "ID~" + 6 hex digits of its options (`OpinionSurvey.variants`).

Rules: an entry (one country, one question) whose shares are all zero or missing is skipped and counted. A record
with a problem (not valid JSON, a missing field, a NaN, infinite, negative or boolean share, a wrong number of
shares, ...) is left out and reported by the line it starts on (CSV lines are physical lines, so multi-line
quoted fields count): `OpinionSurvey.problems`, their count and the first few in `summary()`; one country's bad
shares leave out that country's entry only. With `strict=True` the first problem refuses the file instead (a
one-line DataError naming the file and line). A file with no valid record is refused either way. "Don't know"/"Refused"
options are kept as in the dataset (`unsure="keep"`, default) or dropped with the shares renormalised
(`unsure="drop"`). Country names go through `resolve_country` (country_converter plus Pew's spellings).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..countries import country_name, resolve_country
from ..errors import ConfigError, DataError
from ._opinion_records import _NAN_MARK, _listish, _parse_text, _records
from ._questionnaire import Item, Questionnaire
from ._reference import CountryReference, Distribution, ReferenceTable

Unsure = Literal["keep", "drop"]
UNSURE_OPTION = re.compile(
    r"^\W*(don.?t know|do not know|dk\b|refused|refuse\b|no answer|decline[sd]? to answer|not sure|prefer not)", re.I
)


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


class LineProblem(BaseModel):
    """A record left out of a file: where it starts and why (the DataError text `strict` would raise)."""

    line: int
    message: str


SHOWN_PROBLEMS = 3  # problems listed by summary() (all of them stay in `problems`)


class OpinionSurvey(BaseModel):
    """A GlobalOpinionQA file read as a survey."""

    source: str
    questionnaire: Questionnaire
    reference: ReferenceTable
    unsure: Unsure = "keep"
    skipped: list[SkippedEntry] = Field(default_factory=list)
    dropped_options: int = 0
    unresolved_countries: list[str] = Field(default_factory=list)
    problems: list[LineProblem] = Field(default_factory=list, description="records left out, by line")
    variants: dict[str, list[str]] = Field(
        default_factory=dict, description="question id -> the ids of its other option lists (ID~hash)"
    )
    aligned: list[str] = Field(
        default_factory=list, description="questions whose option lists differ only by DK/Refused/No answer"
    )

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
        if self.variants:
            n = sum(len(v) for v in self.variants.values())
            line += f"; {n} option-list variants of {len(self.variants)} recurring questions kept apart"
        if self.aligned:
            line += f"; {len(self.aligned)} recurring questions aligned (their lists differ only by DK/Refused)"
        if self.problems:
            first = "; ".join(f"line {x.line}: {x.message}" for x in self.problems[:SHOWN_PROBLEMS])
            line += f"\n{len(self.problems)} records with problems left out (first: {first})"
        return line + "\n"


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
        if isinstance(rec, DataError):
            raise rec
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


def _substantive(options: list[str]) -> list[str]:
    return [_match_key(o) for o in options if not UNSURE_OPTION.match(o)]


def _variant_id(q: OpinionQuestion) -> str:
    digest = hashlib.sha1("\x1f".join(f"{k}={o}" for k, o in zip(q.keys, q.options, strict=True)).encode())
    return f"{q.id}~{digest.hexdigest()[:6]}"


class _Builder:
    def __init__(self, p: Path, unsure: Unsure) -> None:
        self.p = p
        self.unsure = unsure
        self.questions: dict[str, OpinionQuestion] = {}
        self.kept: dict[str, list[int]] = {}  # question id -> indexes of the options kept
        self.variants: dict[str, list[str]] = {}
        self.aligned: set[str] = set()
        self.table = ReferenceTable(note=f"from {p.name} (GlobalOpinionQA format)")
        self.skipped: list[SkippedEntry] = []
        self.unresolved: set[str] = set()

    def _keep(self, q: OpinionQuestion) -> None:
        keep = list(range(len(q.options)))
        if self.unsure == "drop":
            keep = [k for k, o in enumerate(q.options) if not UNSURE_OPTION.match(o)]
        self.kept[q.id] = keep

    def _register(self, q: OpinionQuestion) -> OpinionQuestion:
        self.questions[q.id] = q
        self._keep(q)
        return q

    def question(self, line: int, rec: dict[str, Any]) -> tuple[OpinionQuestion, OpinionQuestion]:
        """(the record's question as written, the question its shares go to: itself, the aligned union or
        its option-list variant)."""
        q = _question(self.p, line, rec)
        old = self.questions.get(q.id)
        if old is None:
            return q, self._register(q)
        if old.options == q.options and old.keys == q.keys:
            return q, old
        if _substantive(old.options) == _substantive(q.options):
            self.aligned.add(old.id)
            have = {_match_key(o) for o in old.options}
            extra = [(k, o) for k, o in zip(q.keys, q.options, strict=True) if _match_key(o) not in have]
            if extra:  # the union: the first list, then the non-substantive options it lacked
                opts, keys = list(old.options), list(old.keys)
                for k, o in extra:
                    opts.append(o)
                    keys.append(k if k not in keys else max(keys) + 1)
                old = old.model_copy(update={"options": opts, "keys": keys})
                self.questions[old.id] = old
                self._keep(old)
            return q, old
        vid = _variant_id(q)
        found = self.questions.get(vid)
        if found is None:
            self.variants.setdefault(old.id, []).append(vid)
            found = self._register(q.model_copy(update={"id": vid}))
        return q, found

    def entry(self, line: int, q: OpinionQuestion, target: OpinionQuestion, cname: Any, raw: Any) -> None:
        cname = str(cname).strip()
        if not cname:
            raise DataError(f"{self.p}: line {line}: question {q.id}: empty country name")
        vals = _shares(self.p, line, f"country {cname!r}", raw, q)
        if vals is None:
            self.skipped.append(SkippedEntry(line=line, question=target.id, country=cname, reason="missing shares"))
            return
        if target.options != q.options:  # an aligned record: its shares into the union's places (0 elsewhere)
            at = {_match_key(o): k for k, o in enumerate(target.options)}
            full = [0.0] * len(target.options)
            for o, v in zip(q.options, vals, strict=True):
                full[at[_match_key(o)]] = v
            vals = full
        keep = self.kept[target.id]
        if len(keep) < 2:
            self.skipped.append(SkippedEntry(line=line, question=target.id, country=cname,
                                             reason="fewer than two options left"))  # fmt: skip
            return
        total = sum(vals[k] for k in keep)
        if total <= 0:
            reason = "all-zero shares" if sum(vals) <= 0 else "only 'Don't know'/'Refused' shares"
            self.skipped.append(SkippedEntry(line=line, question=target.id, country=cname, reason=reason))
            return
        try:
            iso = resolve_country(cname)
        except ConfigError:
            iso = cname
            self.unresolved.add(cname)
        ref = self.table.countries.setdefault(iso, CountryReference(name=country_name(iso)))
        if target.id in ref.items:
            self.skipped.append(SkippedEntry(line=line, question=target.id, country=cname,
                                             reason=f"duplicate entries for {iso}"))  # fmt: skip
            return
        order = sorted(keep, key=lambda k: target.keys[k])
        ref.items[target.id] = Distribution(codes=[target.keys[k] for k in order],
                                            shares=[vals[k] / total for k in order], n=0,
                                            source=self.p.name)  # fmt: skip

    def result(self, problems: list[LineProblem]) -> OpinionSurvey:
        items = []
        for q in self.questions.values():
            keep = sorted(self.kept[q.id], key=lambda k: q.keys[k])
            if len(keep) < 2:
                continue
            items.append(Item(id=q.id, theme=q.source or "GlobalOpinionQA", text=q.question,
                              options={q.keys[k]: q.options[k] for k in keep}, kind="categorical"))  # fmt: skip
        if not items:
            raise DataError(f"{self.p}: no question with at least two options")
        for qid in self.aligned:  # entries stored before the union grew: share 0 for the options added later
            codes = sorted(self.questions[qid].keys[k] for k in self.kept[qid])
            for ref in self.table.countries.values():
                d = ref.items.get(qid)
                if d is not None and d.codes != codes:
                    have = dict(zip(d.codes, d.shares, strict=True))
                    ref.items[qid] = d.model_copy(update={"codes": codes, "shares": [have.get(c, 0.0) for c in codes]})
        dropped = sum(len(q.options) - len(self.kept[q.id]) for q in self.questions.values())
        quest = Questionnaire(language="en", name=f"GlobalOpinionQA ({self.p.name})", source=str(self.p), items=items)
        self.table.countries = dict(sorted(self.table.countries.items()))
        return OpinionSurvey(source=str(self.p), questionnaire=quest, reference=self.table, unsure=self.unsure,
                             skipped=self.skipped, dropped_options=dropped,
                             unresolved_countries=sorted(self.unresolved), problems=problems,
                             variants=self.variants, aligned=sorted(self.aligned))  # fmt: skip


def _problem(p: Path, line: int, e: DataError) -> LineProblem:
    return LineProblem(line=line, message=str(e).removeprefix(f"{p}: ").removeprefix(f"line {line}: "))


def load_opinion_survey(path: str | Path, unsure: Unsure = "keep", *, strict: bool = False) -> OpinionSurvey:
    """A GlobalOpinionQA file (either layout) as questionnaire + per-country reference; see the module doc.
    `strict`: refuse the file at its first problem instead of leaving the record out and reporting it."""
    if unsure not in ("keep", "drop"):
        raise ConfigError(f"unsure: {unsure!r} is not one of keep, drop")
    p = Path(path)
    b = _Builder(p, unsure)
    problems: list[LineProblem] = []
    for line, rec in _records(p):
        try:
            if isinstance(rec, DataError):
                raise rec
            if "selections" in rec:
                q, target = b.question(line, rec)
                for cname, raw in _selections(p, line, rec["selections"]).items():
                    try:
                        b.entry(line, q, target, cname, raw)
                    except DataError as e:  # one country's bad shares: that entry only
                        if strict:
                            raise
                        problems.append(_problem(p, line, e))
            elif "distribution" in rec:
                if "country" not in rec:
                    raise DataError(f"{p}: line {line}: a 'distribution' record needs a 'country' field")
                q, target = b.question(line, rec)
                b.entry(line, q, target, rec["country"], rec["distribution"])
            else:
                raise DataError(
                    f"{p}: line {line}: no 'selections' (country -> shares) or 'distribution' (with 'country'); "
                    "is this a question-only file?"
                )
        except DataError as e:
            if strict:
                raise
            problems.append(_problem(p, line, e))
    if not b.questions:
        if problems:
            x = problems[0]
            raise DataError(f"{p}: no valid records ({len(problems)} with problems; first: line {x.line}: {x.message})")
        raise DataError(f"{p}: no records")
    return b.result(problems)


def load_global_opinions(path: str | Path, unsure: Unsure = "keep", *, strict: bool = False) -> ReferenceTable:
    """Per-country answer distributions of a GlobalOpinionQA-style file (items keyed by `id`)."""
    return load_opinion_survey(path, unsure, strict=strict).reference
