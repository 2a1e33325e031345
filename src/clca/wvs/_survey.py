"""Reading WVS respondent files: the official release (numeric CSV, SPSS .sav, Stata .dta, R .rds) and the
labelled export.

Every format gives the same `Respondent` rows: country (ISO alpha-3), weight, valid answers (negative WVS
codes = missing, dropped) and demographics for personas in clca's own wording (the same for every format).

A file with problems loads what is valid: an answer with an unknown code or an unlabelled value is left out
of its respondent (the rest of the row stays), a row whose country or weight cannot be read, or a CSV line
with the wrong number of fields, is left out whole; each is reported by its line (`problems`: the count and
the first few messages). With `strict=True` the first problem refuses the file (a one-line DataError).
Negative codes are WVS's missing codes (-1 don't know, -2 no answer, -4 not asked, -5 missing): dropped as
missing, not problems.
`iter_respondents` streams them (bounded memory); `load_survey` keeps them all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..countries import iso3_from_numeric, region_name, resolve_country
from ..errors import ConfigError, DataError
from ._questionnaire import Item, Questionnaire, default_questionnaire
from ._release import Cell, Release, open_release

DEMOGRAPHIC_FIELDS = (
    "region",
    "settlement",
    "sex",
    "age",
    "born_in_country",
    "marital_status",
    "household_size",
    "education",
    "profession",
    "employment",
    "social_class",
    "income",
    "religion",
)

# WVS-7 variable per persona field, in order of preference.
_DEMO_COLUMNS: dict[str, tuple[str, ...]] = {
    "region": ("N_REGION_ISO", "N_REGION_WVS"),
    "settlement": ("H_URBRURAL", "H_SETTLEMENT"),
    "sex": ("Q260",),
    "age": ("Q262",),
    "born_in_country": ("Q263",),
    "marital_status": ("Q273",),
    "household_size": ("Q270",),
    "education": ("Q275", "Q275R"),
    "profession": ("Q281",),
    "employment": ("Q279",),
    "social_class": ("Q287",),
    "income": ("Q288",),
    "religion": ("Q289",),
}

# Numeric codes of the official CSV -> our wording (codes from the WVS-7 codebook).
_DEMO_CODES: dict[str, dict[int, str]] = {
    "H_URBRURAL": {1: "urban", 2: "rural"},
    "H_SETTLEMENT": {1: "capital city", 2: "regional centre", 3: "district centre", 4: "other town", 5: "village"},
    "Q260": {1: "male", 2: "female"},
    "Q263": {1: "yes", 2: "no"},
    "Q273": {1: "married", 2: "living with a partner", 3: "divorced", 4: "separated", 5: "widowed", 6: "single"},
    "Q275": {
        0: "no formal education", 1: "primary school", 2: "lower secondary school", 3: "upper secondary school",
        4: "post-secondary (non-tertiary) education", 5: "short-cycle tertiary education", 6: "bachelor's degree",
        7: "master's degree", 8: "doctorate",
    },
    "Q275R": {1: "lower", 2: "middle", 3: "higher"},
    "Q279": {
        1: "employed full time", 2: "employed part time", 3: "self-employed", 4: "retired", 5: "homemaker",
        6: "student", 7: "unemployed", 8: "other",
    },
    "Q281": {
        0: "has never had a job", 1: "professional or technical", 2: "senior administrative", 3: "clerical",
        4: "sales", 5: "service", 6: "skilled manual worker", 7: "semi-skilled manual worker",
        8: "unskilled manual worker", 9: "farm worker", 10: "farm owner or manager", 11: "other",
    },
    "Q287": {1: "upper class", 2: "upper middle class", 3: "lower middle class", 4: "working class", 5: "lower class"},
    "Q288": {k: f"step {k} of 10 (1 = lowest income group in the country)" for k in range(1, 11)},
    "Q289": {
        0: "no religious denomination", 1: "Roman Catholic", 2: "Protestant", 3: "Orthodox Christian", 4: "Jewish",
        5: "Muslim", 6: "Hindu", 7: "Buddhist", 8: "other Christian", 9: "other religion",
    },
}  # fmt: skip
_REGION_COLUMNS = ("N_REGION_ISO", "N_REGION_WVS")

_MISSING_LABEL = re.compile(
    r"^(don.?t know|dk|no answer|na|not asked|not applicable|missing|refused|inap|other missing)\b", re.I
)
_NUMBER = re.compile(r"-?\d{1,15}(\.0+)?")  # a code; longer digit runs are not codes (and overflow floats)
_UNSEEN: Any = object()


@dataclass
class Respondent:
    country: str
    weight: float
    answers: dict[str, int]
    demographics: dict[str, str]
    source: str
    line: int

    @property
    def id(self) -> str:
        return f"{Path(self.source).stem}:{self.line}"


@dataclass
class Survey:
    """Respondent rows of one or more files; `asked[country]` = items with a column in that country's file."""

    respondents: list[Respondent] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    weighted: bool = False
    dropped_rows: int = 0
    unlabelled_regions: int = 0  # rows whose region code had no value label (numeric CSV without --labels)
    problem_count: int = 0  # rows or answers left out (see the module doc)
    problems: list[str] = field(default_factory=list)  # the first KEPT_PROBLEMS of them

    @property
    def countries(self) -> list[str]:
        return sorted({r.country for r in self.respondents})

    def of(self, country: str) -> list[Respondent]:
        return [r for r in self.respondents if r.country == country]

    def extend(self, other: Survey) -> None:
        self.respondents += other.respondents
        self.sources += other.sources
        self.weighted = self.weighted or other.weighted
        self.dropped_rows += other.dropped_rows
        self.unlabelled_regions += other.unlabelled_regions
        self.problem_count += other.problem_count
        self.problems += other.problems[: max(0, KEPT_PROBLEMS - len(self.problems))]

    def problem_note(self) -> str:
        """'N rows or answers with problems left out (first: ...)' or '' when none."""
        return problem_note(self.problem_count, self.problems)


KEPT_PROBLEMS = 20  # problem messages kept (all are counted)
SHOWN_PROBLEMS = 3  # listed by the notes


def problem_note(count: int, problems: list[str]) -> str:
    if not count:
        return ""
    return f"{count} rows or answers with problems left out (first: {'; '.join(problems[:SHOWN_PROBLEMS])})"


class RespondentStream:
    """The respondents of one file, read row by row (memory bounded by one chunk); counters filled as it goes."""

    def __init__(self, path: str | Path, questionnaire: Questionnaire | None = None,
                 labels: str | Path | None = None, *, strict: bool = False) -> None:  # fmt: skip
        self.release: Release = open_release(path, labels)
        self.strict = strict
        self.problem_count = 0
        self.problems: list[str] = []
        if not strict:
            self.release.on_problem = self._problem
        self.questionnaire = questionnaire or default_questionnaire()
        cols = set(self.release.columns)
        if "B_COUNTRY_ALPHA" not in cols and "B_COUNTRY" not in cols:
            where = "line 1" if self.release.kind == "csv" else "columns"
            raise DataError(
                f"{self.path}: {where}: no country column (B_COUNTRY_ALPHA or B_COUNTRY); check the delimiter"
            )
        self.items = [i for i in self.questionnaire if i.id in cols]
        if not self.items:
            where = "line 1: " if self.release.kind == "csv" else ""
            raise DataError(
                f"{self.path}: {where}none of the questionnaire's items ({self.questionnaire.ids[0]}...) is a column"
            )
        self.weighted = "W_WEIGHT" in cols
        self.demo_cols = {f: next((c for c in cands if c in cols), None) for f, cands in _DEMO_COLUMNS.items()}
        self.dropped_rows = 0
        self.unlabelled_regions = 0

    @property
    def path(self) -> Path:
        return self.release.path

    def _problem(self, e: DataError) -> None:
        """Count a problem and keep its message (without the file name); raised instead when strict."""
        if self.strict:
            raise e
        self.problem_count += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append(str(e).removeprefix(f"{self.path}: "))

    def __iter__(self) -> Iterator[Respondent]:
        return self.iter()

    def iter(self, progress: Callable[[int], None] | None = None) -> Iterator[Respondent]:
        rel = self.release
        demo = [(f, c) for f, c in self.demo_cols.items() if c is not None]
        wanted = ["B_COUNTRY_ALPHA", "B_COUNTRY", "W_WEIGHT", *(i.id for i in self.items), *(c for _, c in demo)]
        n_items = len(self.items)
        src = str(self.path)
        # cell -> result memos: a release has a handful of distinct cells per column, so each is parsed once
        # (a cell that is an error raises the first time and is never memoised)
        item_memo: list[dict[Cell, int | None]] = [{} for _ in self.items]
        demo_memo: list[dict[Cell, str | None]] = [{} for _ in demo]
        countries: dict[tuple[Cell, Cell], str | None] = {}
        for place, cells in rel.rows(wanted, progress):
            key = (cells[0], cells[1])
            country = countries.get(key, _UNSEEN)
            try:
                if country is _UNSEEN:
                    country = countries[key] = self._country(place, cells[0], cells[1])
                if country is None:  # summary rows (Avg, Avg_First, ...) carry no country
                    self.dropped_rows += 1
                    continue
                weight = self._weight(place, cells[2]) if self.weighted else 1.0
            except DataError as e:  # the row left out (raised when strict)
                self._problem(e)
                continue
            answers: dict[str, int] = {}
            for j in range(n_items):
                cell = cells[3 + j]
                code = item_memo[j].get(cell, _UNSEEN)
                if code is _UNSEEN:
                    try:
                        code = item_memo[j][cell] = self._answer(place, self.items[j], cell)
                    except DataError as e:  # this answer left out (raised when strict); reported per row
                        self._problem(e)
                        code = None
                if code is not None:
                    answers[self.items[j].id] = code
            demographics: dict[str, str] = {}
            for j, (f, c) in enumerate(demo):
                cell = cells[3 + n_items + j]
                v = demo_memo[j].get(cell, _UNSEEN)
                if v is _UNSEEN:
                    before = self.unlabelled_regions
                    v = self._demo(cell, c)
                    if self.unlabelled_regions == before:  # unlabelled region codes are counted per row
                        demo_memo[j][cell] = v
                if v:
                    demographics[f] = v
            yield Respondent(country, weight, answers, demographics, src, int(place.split()[1]))

    def _col(self, code: str) -> str:
        """The column as the file names it (the labelled export's header carries the label)."""
        rel = self.release
        if rel.kind == "csv" and rel.labelled:
            return repr(rel._header[rel.columns.index(code)])
        return code

    def _country(self, place: str, alpha: Cell, numeric: Cell) -> str | None:
        p = self.path
        if isinstance(alpha, str) and alpha.strip():
            v = alpha.strip()
            if not re.fullmatch(r"[A-Za-z]{3}", v):
                raise DataError(f"{p}: {place}: column B_COUNTRY_ALPHA: not an ISO alpha-3 code: {v!r}")
            return v.upper()
        if numeric is None or (isinstance(numeric, float) and math.isnan(numeric)):
            return None
        v = str(numeric).strip()
        if not v:
            return None
        if _NUMBER.fullmatch(v) or isinstance(numeric, (int, float)):
            try:
                code = int(float(v))
            except (ValueError, OverflowError):
                return None
            iso = iso3_from_numeric(code)
            if iso is None:
                raise DataError(f"{p}: {place}: column B_COUNTRY: unknown numeric country code {code}")
            return iso
        if self.release.labelled:
            try:
                return resolve_country(v)
            except ConfigError:
                raise DataError(f"{p}: {place}: column B_COUNTRY: unknown country {v!r}") from None
        return None  # 'Avg' and similar summary rows of numeric files

    def _weight(self, place: str, cell: Cell) -> float:
        p = self.path
        if isinstance(cell, str):
            v = cell.strip()
            if self.release.labelled and re.match(r"no weight", v, re.I):
                return 1.0
            try:
                w = float(v)
            except ValueError:
                raise DataError(f"{p}: {place}: column W_WEIGHT: not a number: {cell!r}") from None
        elif cell is None:
            raise DataError(f"{p}: {place}: column W_WEIGHT: missing weight")
        else:
            w = float(cell)
        if not math.isfinite(w):
            raise DataError(f"{p}: {place}: column W_WEIGHT: not a finite number: {w}")
        if w < 0:
            raise DataError(f"{p}: {place}: column W_WEIGHT: negative weight {w}")
        return w

    def _answer(self, place: str, item: Item, cell: Cell) -> int | None:
        p = self.path
        colname = self._col(item.id)
        if cell is None:
            return None
        if isinstance(cell, str):
            v = cell.strip()
            if not v:
                return None
            if _NUMBER.fullmatch(v):
                code = int(float(v))
            elif self.release.labelled:
                if _MISSING_LABEL.match(v) or item.is_not_answer(label=v):
                    return None
                found = item.label_to_code(v)
                if found is None:
                    raise DataError(f"{p}: {place}: column {colname}: unknown answer label {v!r} for {item.id}")
                return found
            else:
                shown = repr(v) if len(v) <= 40 else f"{v[:40]!r}... ({len(v)} characters)"
                raise DataError(f"{p}: {place}: column {colname}: non-numeric code {shown}")
        else:
            f = float(cell)
            if math.isnan(f):
                return None
            if not f.is_integer():
                raise DataError(f"{p}: {place}: column {colname}: code {f} is not a whole number")
            code = int(f)
        if code < 0 or item.is_not_answer(code=code):
            return None
        if code not in item.options:
            raise DataError(f"{p}: {place}: column {colname}: code {code} is not an option of {item.id} ({item.codes})")
        return code

    def _demo(self, cell: Cell, column: str) -> str | None:
        if cell is None or isinstance(cell, str):
            return None if cell is None else _demo(cell, column, self.release.labelled, self)
        f = float(cell)
        if math.isnan(f) or not f.is_integer():
            return None
        return _demo(str(int(f)), column, self.release.labelled, self)


def iter_respondents(path: str | Path, questionnaire: Questionnaire | None = None,
                     labels: str | Path | None = None, *, strict: bool = False) -> RespondentStream:  # fmt: skip
    """Stream the respondents of a file (any release format); see `RespondentStream`."""
    return RespondentStream(path, questionnaire, labels, strict=strict)


def load_survey(
    path: str | Path,
    questionnaire: Questionnaire | None = None,
    labels: str | Path | None = None,
    *,
    strict: bool = False,
) -> Survey:
    """Read a WVS respondent file: `.csv` (numeric codes or the `;` labelled export, detected from the header),
    `.sav`, `.dta` or `.rds`. `labels`: value labels for a numeric CSV (a `.sav`/`.dta` of the release or JSON).
    `strict`: refuse the file at its first problem (see the module doc)."""
    stream = RespondentStream(path, questionnaire, labels, strict=strict)
    survey = Survey(sources=[str(stream.path)], weighted=stream.weighted)
    survey.respondents = list(stream)
    survey.dropped_rows = stream.dropped_rows
    survey.unlabelled_regions = stream.unlabelled_regions
    survey.problem_count, survey.problems = stream.problem_count, stream.problems
    if not survey.respondents:
        raise DataError(f"{stream.path}: no respondent rows")
    return survey


def _demo(v: str, column: str, labelled: bool, stream: RespondentStream | None = None) -> str | None:
    """A demographic cell -> clca's own vocabulary (the same for every format). Numeric codes use the WVS-7
    codebook's codes; regions (and codes clca has no wording for) use the value labels of the file."""
    v = v.strip()
    if not v or _MISSING_LABEL.match(v):
        return None
    if _NUMBER.fullmatch(v):
        n = int(float(v))
        if n < 0:
            return None
        if column in ("Q262", "Q270"):
            return str(n)
        file_label = stream.release.labels.get(column, {}).get(n) if stream is not None else None
        if column in _REGION_COLUMNS:
            if file_label is None:
                if stream is not None:
                    stream.unlabelled_regions += 1
                return None
            return _region(file_label, column)
        table = _DEMO_CODES.get(column, {})
        if n in table:
            return table[n]
        return None if file_label is None or _MISSING_LABEL.match(file_label) else file_label.strip()
    if not labelled:
        return None
    if column in _REGION_COLUMNS:
        return _region(v, column)
    if column == "Q275":  # ISCED level
        m = re.search(r"ISCED (\d)", v)
        return None if m is None else _DEMO_CODES["Q275"].get(int(m.group(1)))
    if column == "Q270" and re.match(r"\d+", v):
        return re.match(r"\d+", v).group(0)  # type: ignore[union-attr]
    low = v.lower()
    for pattern, code in _LABEL_KEYWORDS.get(column, ()):
        if re.search(pattern, low):
            return _DEMO_CODES[column][code]
    return None


def _region(label: str, column: str) -> str:
    if column == "N_REGION_WVS":  # "US: IL Illinois" / "AR: Capital Federal"
        return re.sub(r"^[A-Z]{2}:\s*([A-Z0-9]{1,3}\s+(?=\S))?", "", label).strip()
    return region_name(label)


# Keywords of the labelled export's demographic categories -> codes (first match wins).
_LABEL_KEYWORDS: dict[str, tuple[tuple[str, int], ...]] = {
    "H_URBRURAL": (("urban", 1), ("rural", 2)),
    "H_SETTLEMENT": (("capital", 1), ("regional", 2), ("district", 3), ("village", 5), ("town|city", 4)),
    "Q260": (("female", 2), ("male", 1)),
    "Q263": (("born in this country", 1), ("immigrant|born outside", 2)),
    "Q273": (("living together", 2), ("married", 1), ("divorced", 3), ("separated", 4), ("widow", 5), ("single", 6)),
    "Q275R": (("lower", 1), ("middle", 2), ("higher", 3)),
    "Q279": (
        ("full time", 1), ("part time", 2), ("self", 3), ("retired|pension", 4), ("housewife|homemaker", 5),
        ("student", 6), ("unemployed", 7), (".", 8),
    ),
    "Q281": (
        ("never had", 0), ("professional", 1), ("administrative", 2), ("clerical", 3), ("sales", 4), ("service", 5),
        ("semi-skilled", 7), ("unskilled", 8), ("skilled", 6), ("farm worker", 9), ("farm", 10), (".", 11),
    ),
    "Q287": (("upper middle", 2), ("lower middle", 3), ("upper", 1), ("working", 4), ("lower", 5)),
    "Q288": (
        ("lower step|first|lowest", 1), ("second", 2), ("third", 3), ("fourth", 4), ("fifth", 5), ("sixth", 6),
        ("seventh", 7), ("eight", 8), ("nine?th", 9), ("tenth|highest|upper step", 10),
    ),
    "Q289": (
        ("do not belong|no denomination|none", 0), ("catholic", 1), ("other christian|evangelical|pentecostal", 8),
        ("protestant", 2), ("orthodox", 3), ("jew", 4), ("muslim|islam", 5), ("hindu", 6), ("buddhis", 7), (".", 9),
    ),
}  # fmt: skip
