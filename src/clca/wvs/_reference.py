"""Human answer distributions per country and item, demographic marginals, and the reference table file."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .._files import follow_umask
from ..errors import DataError
from ._countries import country_name
from ._questionnaire import Questionnaire, default_questionnaire
from ._survey import DEMOGRAPHIC_FIELDS, Survey, load_survey

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

    def distribution(self, country: str, item: str) -> Distribution | None:
        c = self.countries.get(country)
        return None if c is None else c.items.get(item)

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.model_dump(), fh, indent=1, ensure_ascii=False, sort_keys=False)
                fh.write("\n")
            follow_umask(tmp)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def distributions(survey: Survey, questionnaire: Questionnaire | None = None) -> dict[str, dict[str, Distribution]]:
    """country -> item -> Distribution. Negative codes were dropped at load time; weights applied when present.

    An item without a single valid answer in a country (not asked there) has no entry at all.
    """
    q = questionnaire or default_questionnaire()
    out: dict[str, dict[str, Distribution]] = {}
    by_country: dict[str, list] = defaultdict(list)
    for r in survey.respondents:
        by_country[r.country].append(r)
    for country, rows in sorted(by_country.items()):
        per: dict[str, Distribution] = {}
        for item in q:
            mass = {c: 0.0 for c in item.codes}
            n = 0
            for r in rows:
                code = r.answers.get(item.id)
                if code is not None:
                    mass[code] += r.weight
                    n += 1
            total = sum(mass.values())
            if n == 0 or total <= 0:
                continue
            per[item.id] = Distribution(
                codes=item.codes,
                shares=[mass[c] / total for c in item.codes],
                n=n,
                weighted=survey.weighted,
                source=", ".join(sorted({Path(r.source).name for r in rows})),
            )
        out[country] = per
    return out


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
    out: dict[str, dict[str, Marginal]] = {}
    for country in survey.countries:
        rows = survey.of(country)
        per: dict[str, Marginal] = {}
        for f in DEMOGRAPHIC_FIELDS:
            mass: dict[str, float] = defaultdict(float)
            n = 0
            for r in rows:
                v = r.demographics.get(f)
                if v is None:
                    continue
                if f == "age":
                    v = age_band(v)
                    if v is None:
                        continue
                elif f == "household_size" and v.isdigit() and int(v) >= 7:
                    v = "7+"
                mass[v] += r.weight
                n += 1
            total = sum(mass.values())
            if n and total > 0:
                src = ", ".join(sorted({Path(r.source).name for r in rows}))
                per[f] = Marginal(values={k: mass[k] / total for k in sorted(mass)}, n=n, source=src)
        if per:
            out[country] = per
    return out


def aggregate(files: Iterable[str | Path], questionnaire: Questionnaire | None = None) -> ReferenceTable:
    """Build a reference table from respondent files. When several files cover the same country and item,
    the one with the most valid answers wins (no pooling: files may overlap); each entry names its source."""
    q = questionnaire or default_questionnaire()
    table = ReferenceTable(
        note="Answer shares per country and item computed by `clca wvs aggregate` from WVS-7 respondent files; "
        "negative codes dropped, W_WEIGHT applied when present; n = respondents with a valid answer."
    )
    for f in files:
        survey = load_survey(f, q)
        for country, items in distributions(survey, q).items():
            ref = table.countries.setdefault(country, CountryReference(name=country_name(country)))
            for iid, d in items.items():
                old = ref.items.get(iid)
                if old is None or d.n > old.n:
                    ref.items[iid] = d
        for country, margs in marginals(survey).items():
            ref = table.countries.setdefault(country, CountryReference(name=country_name(country)))
            for fld, m in margs.items():
                old_m = ref.marginals.get(fld)
                if old_m is None or m.n > old_m.n:
                    ref.marginals[fld] = m
    for ref in table.countries.values():
        ref.items = {i: ref.items[i] for i in q.ids if i in ref.items}
    return table


def bundled_reference_path() -> Path:
    return Path(str(resources.files("clca") / "data" / "wvs" / "reference.json"))


def load_reference(path: str | Path | None = None) -> ReferenceTable:
    """Read a reference table (the bundled one when path is None)."""
    from .._files import read_text

    p = Path(path) if path is not None else bundled_reference_path()
    text = read_text(p, "reference table")
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{p}: not a clca reference table (expected format {FORMAT!r})")
    try:
        return ReferenceTable.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise DataError(f"{p}: field {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from e


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
