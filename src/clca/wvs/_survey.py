"""Reading WVS respondent files: the official numeric CSV and the labelled export.

Both give a `Survey`: one `Respondent` per row with country (ISO alpha-3), weight, valid answers
(negative WVS codes = missing, dropped) and demographics for personas.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ._countries import iso3_from_numeric, resolve_country
from ._questionnaire import Questionnaire, default_questionnaire

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
    "education": ("Q275R", "Q275"),
    "profession": ("Q281",),
    "employment": ("Q279",),
    "social_class": ("Q287",),
}

# Numeric codes of the official CSV -> our wording (codes from the WVS-7 codebook).
_DEMO_CODES: dict[str, dict[int, str]] = {
    "H_URBRURAL": {1: "urban", 2: "rural"},
    "H_SETTLEMENT": {1: "capital city", 2: "regional centre", 3: "district centre", 4: "other town", 5: "village"},
    "Q260": {1: "male", 2: "female"},
    "Q263": {1: "yes", 2: "no"},
    "Q273": {1: "married", 2: "living with a partner", 3: "divorced", 4: "separated", 5: "widowed", 6: "single"},
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
}  # fmt: skip

_MISSING_LABEL = re.compile(
    r"^(don.?t know|dk|no answer|na|not asked|not applicable|missing|refused|inap|other missing)\b", re.I
)


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


def load_survey(path: str | Path, questionnaire: Questionnaire | None = None) -> Survey:
    """Read a WVS respondent file; the format (numeric CSV or `;` labelled export) is detected from the header."""
    p = Path(path)
    q = questionnaire or default_questionnaire()
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
    return _read(p, delim, labelled, q)


def _code_of(header: str, labelled: bool) -> str:
    h = header.strip()
    return h.split(" ", 1)[0] if labelled else h


def _read(p: Path, delim: str, labelled: bool, q: Questionnaire) -> Survey:
    items = {i.id: i for i in q}
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delim)
        header = next(reader)
        codes = [_code_of(h, labelled) for h in header]
        col = {c: k for k, c in enumerate(codes) if c}
        if "B_COUNTRY_ALPHA" not in col and "B_COUNTRY" not in col:
            raise DataError(f"{p}: line 1: no country column (B_COUNTRY_ALPHA or B_COUNTRY); check the delimiter")
        item_cols = [(iid, col[iid]) for iid in items if iid in col]
        if not item_cols:
            raise DataError(f"{p}: line 1: none of the questionnaire's items ({q.ids[0]}...) is a column")
        wcol = col.get("W_WEIGHT")
        demo_cols = {f: next((c for c in cands if c in col), None) for f, cands in _DEMO_COLUMNS.items()}
        survey = Survey(sources=[str(p)], weighted=wcol is not None)
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{p}: line {line}: {len(row)} fields, header has {len(header)}")
            country = _country(p, line, row, col, labelled)
            if country is None:  # summary rows (Avg, Avg_First, ...) carry no country
                survey.dropped_rows += 1
                continue
            weight = 1.0
            if wcol is not None:
                try:
                    wv = row[wcol].strip()
                    weight = 1.0 if labelled and re.match(r"no weight", wv, re.I) else float(wv)
                except ValueError:
                    raise DataError(f"{p}: line {line}: column W_WEIGHT: not a number: {row[wcol]!r}") from None
                if weight < 0:
                    raise DataError(f"{p}: line {line}: column W_WEIGHT: negative weight {weight}")
            answers: dict[str, int] = {}
            for iid, k in item_cols:
                code = _answer(p, line, header[k], row[k], items[iid], labelled)
                if code is not None:
                    answers[iid] = code
            demo: dict[str, str] = {}
            for f, c in demo_cols.items():
                if c is not None:
                    v = _demo(row[col[c]], c, labelled)
                    if v:
                        demo[f] = v
            survey.respondents.append(Respondent(country, weight, answers, demo, str(p), line))
    if not survey.respondents:
        raise DataError(f"{p}: no respondent rows")
    return survey


def _country(p: Path, line: int, row: list[str], col: dict[str, int], labelled: bool) -> str | None:
    if "B_COUNTRY_ALPHA" in col:
        v = row[col["B_COUNTRY_ALPHA"]].strip()
        if v:
            if not re.fullmatch(r"[A-Za-z]{3}", v):
                raise DataError(f"{p}: line {line}: column B_COUNTRY_ALPHA: not an ISO alpha-3 code: {v!r}")
            return v.upper()
        if "B_COUNTRY" not in col:
            return None
    v = row[col["B_COUNTRY"]].strip()
    if not v:
        return None
    if v.lstrip("-").isdigit():
        iso = iso3_from_numeric(int(v))
        if iso is None:
            raise DataError(f"{p}: line {line}: column B_COUNTRY: unknown numeric country code {v}")
        return iso
    if labelled:
        try:
            return resolve_country(v)
        except Exception:
            raise DataError(f"{p}: line {line}: column B_COUNTRY: unknown country {v!r}") from None
    return None  # 'Avg' and similar summary rows of numeric files


def _answer(p: Path, line: int, colname: str, cell: str, item, labelled: bool) -> int | None:  # noqa: ANN001
    v = cell.strip()
    if not v:
        return None
    if re.fullmatch(r"-?\d+(\.0+)?", v):
        code = int(float(v))
    elif labelled:
        if _MISSING_LABEL.match(v):
            return None
        found = item.label_to_code(v)
        if found is None:
            raise DataError(f"{p}: line {line}: column {colname!r}: unknown answer label {v!r} for {item.id}")
        return found
    else:
        raise DataError(f"{p}: line {line}: column {colname}: non-numeric code {v!r}")
    if code < 0:
        return None
    if code not in item.options:
        raise DataError(f"{p}: line {line}: column {colname}: code {code} is not an option of {item.id} ({item.codes})")
    return code


def _demo(cell: str, column: str, labelled: bool) -> str | None:
    """A demographic cell -> clca's own vocabulary (the same for numeric and labelled files)."""
    v = cell.strip()
    if not v or _MISSING_LABEL.match(v):
        return None
    if re.fullmatch(r"-?\d+(\.0+)?", v):
        n = int(float(v))
        if n < 0:
            return None
        if column in ("Q262", "Q270"):
            return str(n)
        table = _DEMO_CODES.get(column)
        return table.get(n) if table else None
    if not labelled:
        return None
    if column == "N_REGION_ISO":
        return re.sub(r"^[A-Z]{2}-[A-Z0-9]+\s+", "", v)
    if column == "N_REGION_WVS":
        return re.sub(r"^[A-Z]{2}:\s*([A-Z0-9]+\s+)?", "", v)
    if column == "Q275":  # ISCED level -> lower / middle / higher
        m = re.search(r"ISCED (\d)", v)
        return (
            None if m is None else ("lower" if int(m.group(1)) <= 2 else "middle" if int(m.group(1)) <= 4 else "higher")
        )
    if column == "Q270" and re.match(r"\d+", v):
        return re.match(r"\d+", v).group(0)  # type: ignore[union-attr]
    low = v.lower()
    for pattern, code in _LABEL_KEYWORDS.get(column, ()):
        if re.search(pattern, low):
            return _DEMO_CODES[column][code]
    return None


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
}  # fmt: skip
