"""Human answer distributions per country and item, demographic marginals, and the reference table file."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .._files import atomic_file
from ..countries import country_name
from ..errors import DataError
from ._questionnaire import Questionnaire, default_questionnaire
from ._survey import DEMOGRAPHIC_FIELDS, Respondent, Survey, iter_respondents

FORMAT = "clca-wvs-reference/1"
AGE_BANDS = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 200))


class Distribution(BaseModel):
    """Shares of each answer code (scale order) among the valid answers of one country to one item."""

    codes: list[int]
    shares: list[float]
    n: int = Field(description="respondents with a valid (non-negative) answer")
    weighted: bool = False
    source: str = ""

    def share(self, code: int) -> float:
        return self.shares[self.codes.index(code)]


class Marginal(BaseModel):
    values: dict[str, float]
    n: int
    source: str = ""


class CountryReference(BaseModel):
    name: str
    items: dict[str, Distribution] = Field(default_factory=dict)
    marginals: dict[str, Marginal] = Field(default_factory=dict)


class ReferenceTable(BaseModel):
    """Per-country answer shares (figures only) with source and n; what `clca wvs aggregate` writes."""

    format: str = FORMAT
    note: str = ""
    countries: dict[str, CountryReference] = Field(default_factory=dict)
    dropped_rows: int = Field(0, exclude=True, description="rows without a country (summary rows), not stored")
    unlabelled_regions: int = Field(0, exclude=True, description="region codes without a value label, not stored")
    problem_count: int = Field(0, exclude=True, description="rows or answers of the files left out, not stored")
    problems: list[str] = Field(default_factory=list, exclude=True, description="the first of them, not stored")

    def distribution(self, country: str, item: str) -> Distribution | None:
        c = self.countries.get(country)
        return None if c is None else c.items.get(item)

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(p) as fh:
            json.dump(self.model_dump(), fh, indent=1, ensure_ascii=False, sort_keys=False)
            fh.write("\n")


class _Accumulator:
    """Weighted answer counts and demographic counts per country, filled one respondent at a time (the memory
    is per country x item x code, whatever the number of respondents)."""

    def __init__(self, q: Questionnaire) -> None:
        self.q = q
        self.codes = {i.id: i.codes for i in q}
        self.mass: dict[str, dict[str, dict[int, float]]] = {}
        self.n: dict[str, dict[str, int]] = {}
        self.demo: dict[str, dict[str, dict[str, float]]] = {}
        self.demo_n: dict[str, dict[str, int]] = {}
        self.sources: dict[str, set[str]] = defaultdict(set)
        self.weighted = False
        self.scale = 0.0  # weights are divided by the first positive one: shares are ratios, sums stay finite

    def _w(self, weight: float) -> float:
        if self.scale == 0.0 and weight > 0:
            self.scale = weight
        return weight / self.scale if self.scale else weight

    def add(self, r: Respondent) -> None:
        c = r.country
        w = self._w(r.weight)
        if c not in self.mass:
            self.mass[c] = {}
            self.n[c] = defaultdict(int)
            self.demo[c] = {}
            self.demo_n[c] = defaultdict(int)
        self.sources[c].add(Path(r.source).name)
        mass, n = self.mass[c], self.n[c]
        for iid, code in r.answers.items():
            m = mass.get(iid)
            if m is None:
                m = mass[iid] = dict.fromkeys(self.codes[iid], 0.0)
            m[code] += w
            n[iid] += 1
        demo, demo_n = self.demo[c], self.demo_n[c]
        for f, v in r.demographics.items():
            if f == "age":
                band = age_band(v)
                if band is None:
                    continue
                v = band
            elif f == "household_size" and v.isdigit() and int(v) >= 7:
                v = "7+"
            d = demo.get(f)
            if d is None:
                d = demo[f] = defaultdict(float)
            d[v] += w
            demo_n[f] += 1

    def distributions(self) -> dict[str, dict[str, Distribution]]:
        out: dict[str, dict[str, Distribution]] = {}
        for country in sorted(self.mass):
            per: dict[str, Distribution] = {}
            src = ", ".join(sorted(self.sources[country]))
            for item in self.q:
                m = self.mass[country].get(item.id)
                n = self.n[country].get(item.id, 0)
                total = sum(m.values()) if m else 0.0
                _check_total(total, country, item.id, src)
                if not m or n == 0 or total <= 0:
                    continue
                per[item.id] = Distribution(codes=item.codes, shares=[m[code] / total for code in item.codes], n=n,
                                            weighted=self.weighted, source=src)  # fmt: skip
            out[country] = per
        return out

    def marginals(self) -> dict[str, dict[str, Marginal]]:
        out: dict[str, dict[str, Marginal]] = {}
        for country in sorted(self.demo):
            per: dict[str, Marginal] = {}
            src = ", ".join(sorted(self.sources[country]))
            for f in DEMOGRAPHIC_FIELDS:
                mass = self.demo[country].get(f)
                n = self.demo_n[country].get(f, 0)
                total = sum(mass.values()) if mass else 0.0
                _check_total(total, country, f, src)
                if mass and n and total > 0:
                    per[f] = Marginal(values={k: mass[k] / total for k in sorted(mass)}, n=n, source=src)
            if per:
                out[country] = per
        return out


def _check_total(total: float, country: str, what: str, src: str) -> None:
    if not math.isfinite(total):
        raise DataError(
            f"{src}: {country} {what}: the W_WEIGHT values differ too much to sum (they overflow even after "
            "scaling); check the weight column"
        )


def _accumulate(survey: Survey, q: Questionnaire) -> _Accumulator:
    acc = _Accumulator(q)
    acc.weighted = survey.weighted
    for r in survey.respondents:
        acc.add(r)
    return acc


def distributions(survey: Survey, questionnaire: Questionnaire | None = None) -> dict[str, dict[str, Distribution]]:
    """country -> item -> Distribution. Negative codes were dropped at load time; weights applied when present.

    An item without a single valid answer in a country (not asked there) has no entry at all.
    """
    return _accumulate(survey, questionnaire or default_questionnaire()).distributions()


def age_band(age: str) -> str | None:
    try:
        a = int(age)
    except ValueError:
        return None
    for lo, hi in AGE_BANDS:
        if lo <= a <= hi:
            return f"{lo}+" if hi >= 200 else f"{lo}-{hi}"
    return None


def marginals(survey: Survey) -> dict[str, dict[str, Marginal]]:
    """country -> demographic field -> weighted shares of its values (age in bands, household size capped at 7+)."""
    return _accumulate(survey, default_questionnaire()).marginals()


def aggregate(
    files: Iterable[str | Path],
    questionnaire: Questionnaire | None = None,
    labels: str | Path | None = None,
    progress: bool = False,
    *,
    strict: bool = False,
) -> ReferenceTable:
    """Build a reference table from respondent files (any release format), streaming: memory stays bounded by one
    chunk of rows plus the counts, whatever the file size. One source per country: when several files cover a
    country, the file that covers the most items (ties: the most valid answers) gives all of that country's
    items (no pooling, and no item-by-item mixing of files that differ in weighting and sample); each entry
    names its source. Demographic marginals come from the same file when it has them, else from the file with
    the most respondents that does (only respondent-level files carry demographics)."""
    from tqdm.auto import tqdm

    q = questionnaire or default_questionnaire()
    table = ReferenceTable(
        note="Answer shares per country and item computed by `clca wvs aggregate` from WVS-7 respondent files; "
        "negative codes dropped, W_WEIGHT applied when present; n = respondents with a valid answer. "
        "One source file per country: the one covering the most items."
    )
    items_by: dict[str, list[dict[str, Distribution]]] = defaultdict(list)
    margs_by: dict[str, list[dict[str, Marginal]]] = defaultdict(list)
    for f in files:
        stream = iter_respondents(f, q, labels, strict=strict)
        rel = stream.release
        acc = _Accumulator(q)
        acc.weighted = stream.weighted
        by_bytes = rel.rows_total is None
        total = rel.size if by_bytes else rel.rows_total
        unit = dict(unit="B", unit_scale=True, unit_divisor=1024) if by_bytes else dict(unit=" rows")
        with tqdm(total=total, desc=Path(f).name, disable=not progress, leave=False, **unit) as bar:
            for r in stream.iter(bar.update):
                acc.add(r)
        if not acc.mass:
            raise DataError(f"{rel.path}: no respondent rows")
        table.dropped_rows += stream.dropped_rows
        table.unlabelled_regions += stream.unlabelled_regions
        table.problem_count += stream.problem_count
        table.problems += [f"{rel.path.name}: {m}" for m in stream.problems]
        for country, items in acc.distributions().items():
            items_by[country].append(items)
        for country, margs in acc.marginals().items():
            margs_by[country].append(margs)
    for country in sorted(set(items_by) | set(margs_by)):
        ref = table.countries.setdefault(country, CountryReference(name=country_name(country)))
        if items_by[country]:
            best = max(items_by[country], key=lambda its: (len(its), sum(d.n for d in its.values())))
            ref.items = {i: best[i] for i in q.ids if i in best}
        chosen = {d.source for d in ref.items.values()}
        cands = margs_by.get(country, [])
        same = [m for m in cands if {x.source for x in m.values()} <= chosen]
        if same or cands:
            ref.marginals = max(same or cands, key=lambda m: max(x.n for x in m.values()))
    table.countries = dict(sorted(table.countries.items()))
    return table


def sources(table: ReferenceTable, country: str) -> list[tuple[str, bool]]:
    """(source file, weighted) pairs of a country's item shares: one pair in a table `aggregate` made."""
    ref = table.countries.get(country)
    return sorted({(d.source, d.weighted) for d in ref.items.values()}) if ref else []


def bundled_reference_path() -> Path:
    return Path(str(resources.files("clca") / "data" / "wvs" / "reference.json"))


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFinite(name)


def load_reference(path: str | Path | None = None) -> ReferenceTable:
    """Read a reference table (the bundled one when path is None). NaN, infinite or negative shares, shares that
    do not match the codes, or an all-zero distribution are refused with the file and line."""
    from .._files import load_json, read_text

    p = Path(path) if path is not None else bundled_reference_path()
    text = read_text(p, "reference table")
    try:
        raw: Any = load_json(text, str(p), parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from e
    except _NonFinite as e:
        m = re.search(r"(?<![\w\"])" + re.escape(str(e)) + r"(?![\w\"])", text)
        line = text.count("\n", 0, m.start()) + 1 if m else 0
        raise DataError(f"{p}: line {line}: {e} is not a share (shares must be finite numbers >= 0)") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{p}: not a clca reference table (expected format {FORMAT!r})")
    try:
        table = ReferenceTable.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise DataError(f"{p}: field {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from e
    for iso, c in table.countries.items():
        for iid, d in c.items.items():
            problem = _share_problem(d.shares, len(d.codes))
            if problem:
                raise DataError(f"{p}: line {_line_of(text, iso, iid, 'shares')}: {iso} {iid}: {problem}")
        for fld, m in c.marginals.items():
            problem = _share_problem(list(m.values.values()), len(m.values))
            if problem:
                raise DataError(f"{p}: line {_line_of(text, iso, fld, 'values')}: {iso} marginal {fld}: {problem}")
    return table


def _share_problem(shares: list[float], n: int) -> str | None:
    if len(shares) != n:
        return f"{len(shares)} shares for {n} codes"
    for x in shares:
        if not math.isfinite(x):
            return f"share {x} is not a finite number"
        if x < 0:
            return f"negative share {x}"
    if sum(shares) <= 0:
        return "all shares are zero"
    return None


def _line_of(text: str, *keys: str) -> int:
    """Line of the last of the nested keys (searched in order), for errors about a JSON file we parsed."""
    pos = 0
    for k in keys:
        found = text.find(json.dumps(k), pos)
        if found < 0:
            break
        pos = found
    return text.count("\n", 0, pos) + 1


def reference_from_survey(survey: Survey, questionnaire: Questionnaire | None = None) -> ReferenceTable:
    """The same table, computed in memory from a user's respondent file (`--survey FILE`)."""
    q = questionnaire or default_questionnaire()
    table = ReferenceTable(note="computed from " + ", ".join(survey.sources))
    margs = marginals(survey)
    for country, items in distributions(survey, q).items():
        table.countries[country] = CountryReference(
            name=country_name(country), items=items, marginals=margs.get(country, {})
        )
    return table


def survey_reference(
    files: Iterable[str | Path],
    questionnaire: Questionnaire | None = None,
    labels: str | Path | None = None,
    keep: set[str] | None = None,
    *,
    strict: bool = False,
) -> tuple[Survey, ReferenceTable]:
    """Read respondent files once, streaming: the reference of every country in them (pooled over the files, as
    `reference_from_survey`) and the respondents of the `keep` countries only (all when None), so that
    `--survey` on the full WVS-7 file holds in memory only the respondents of the cultures evaluated."""
    q = questionnaire or default_questionnaire()
    acc = _Accumulator(q)
    survey = Survey()
    for f in files:
        stream = iter_respondents(f, q, labels, strict=strict)
        n = 0
        for r in stream:
            n += 1
            acc.add(r)
            if keep is None or r.country in keep:
                survey.respondents.append(r)
        if n == 0:
            raise DataError(f"{stream.path}: no respondent rows")
        survey.sources.append(str(stream.path))
        survey.weighted = survey.weighted or stream.weighted
        survey.dropped_rows += stream.dropped_rows
        survey.unlabelled_regions += stream.unlabelled_regions
        survey.problem_count += stream.problem_count
        survey.problems += [f"{stream.path.name}: {m}" for m in stream.problems]
    acc.weighted = survey.weighted
    table = ReferenceTable(note="computed from " + ", ".join(survey.sources))
    margs = acc.marginals()
    for country, items in acc.distributions().items():
        table.countries[country] = CountryReference(
            name=country_name(country), items=items, marginals=margs.get(country, {})
        )
    return survey, table
