"""Every country once: its codes, its one display name, and the names and spellings that resolve to it.

The table is country_converter's `country_data.tsv` (ISO alpha-2/alpha-3/numeric codes, short and official
names, a name-matching regular expression per country, the UN M49 sub-region), read directly: fast, and
independent of the pandas version its converter class needs. Obsolete entries are left out.

One display name per country (`country_name`): the table's short name, except where the surveys this
project reads (WVS, GlobalOpinionQA, CultureLLM's files) spell it otherwise (`DISPLAY_NAMES`). Culture
profiles, survey prompts, reference tables and reports all name a country with it, so one run names
Turkey the same way in role-play and in survey prompts. The other spelling stays a name that resolves.

`resolve_country` is the one way from a string to a country (ISO alpha-3): a code, a display, short or
official name, an alias, or a spelling country_converter's expressions match ("S. Korea", "Czech Rep.",
"Taiwan ROC", "Türkiye"). Matching is linear in the name's length (one pass of each expression); names
longer than `MAX_NAME` characters are refused.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import ConfigError

#: the longest country or culture name accepted (a longer one is refused with a one-line error)
MAX_NAME = 200
#: display names where the surveys' spelling differs from country_converter's short name
DISPLAY_NAMES: dict[str, str] = {"TUR": "Turkey", "MAC": "Macao"}
#: countries the surveys have that ISO 3166-1 does not: WVS's own alpha-3 -> (WVS numeric code, name)
SURVEY_ONLY: dict[str, tuple[int, str]] = {"NIR": (909, "Northern Ireland")}
#: spellings the table's names and expressions do not resolve -> ISO alpha-3
ALIASES: dict[str, str] = {"america": "USA", "holland": "NLD", "n. ireland": "NIR"}


@dataclass(frozen=True)
class Country:
    iso2: str
    iso3: str
    numeric: int | None
    name: str  # the one display name
    short_name: str  # country_converter's short name (the display name unless DISPLAY_NAMES says otherwise)
    official_name: str
    un_region: str
    pattern: str


def _table_path() -> Path:
    """country_converter's country_data.tsv, found without importing the package (which imports pandas)."""
    spec = importlib.util.find_spec("country_converter")
    for loc in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "country_data.tsv"
        if path.is_file():
            return path
    raise ConfigError("country_converter's country table (country_data.tsv) not found; pip install country_converter")


def _first_code(cell: str) -> str:
    """The ISO alpha-2 code of a table cell; a few cells are patterns such as '^GB$|^UK$'."""
    codes = re.findall(r"[A-Z]{2}", cell)
    return codes[0] if codes else ""


@cache
def countries() -> tuple[Country, ...]:
    """The current countries of country_converter's table, then the survey-only ones."""
    out: list[Country] = []
    with _table_path().open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            iso3 = r.get("ISO3", "").strip()
            if r.get("obsolete", "").strip() or not re.fullmatch(r"[A-Z]{3}", iso3):
                continue
            num = r.get("ISOnumeric", "").strip()
            short = r["name_short"].strip()
            out.append(
                Country(
                    iso2=_first_code(r["ISO2"]),
                    iso3=iso3,
                    numeric=int(num) if num.isdigit() else None,
                    name=DISPLAY_NAMES.get(iso3, short),
                    short_name=short,
                    official_name=r["name_official"].strip(),
                    un_region=r["UNregion"].strip(),
                    pattern=r["regex"],
                )
            )
    for iso3, (num, name) in SURVEY_ONLY.items():
        out.append(Country("", iso3, num, name, name, name, "", re.escape(name.lower())))
    return tuple(out)


@cache
def _by_iso3() -> dict[str, Country]:
    return {c.iso3: c for c in countries()}


def country(iso3: str) -> Country | None:
    """The country of an ISO alpha-3 code (or a survey-only code such as NIR), or None."""
    return _by_iso3().get(iso3.upper())


def country_name(iso3: str) -> str:
    """The one display name ("KOR" -> "South Korea", "TUR" -> "Turkey"); the code itself when unknown."""
    c = country(iso3)
    return c.name if c is not None else iso3


def iso3_from_iso2(iso2: str) -> str | None:
    return next((c.iso3 for c in countries() if c.iso2 and c.iso2 == iso2.upper()), None)


def iso3_from_numeric(code: int) -> str | None:
    """ISO alpha-3 of an ISO 3166-1 numeric code (WVS `B_COUNTRY`, 909 for Northern Ireland); None when unknown."""
    return next((c.iso3 for c in countries() if c.numeric == code), None)


@cache
def _exact() -> dict[str, str]:
    """Lower-cased codes, names and aliases -> ISO alpha-3 (display names first)."""
    out: dict[str, str] = {}
    for field in ("iso3", "name", "short_name", "iso2", "official_name"):  # a code or short name before an official one
        for c in countries():
            if key := getattr(c, field):
                out.setdefault(key.lower(), c.iso3)
    for key, iso3 in ALIASES.items():
        out.setdefault(key, iso3)
    return out


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(c.pattern, re.IGNORECASE), c.iso3) for c in countries() if c.pattern)


def check_name_length(name: str, what: str = "country") -> None:
    if len(name) > MAX_NAME:
        raise ConfigError(f"{what} name too long ({len(name)} characters; at most {MAX_NAME})")


@cache
def match_country(name: str, whole: bool = False) -> str | None:
    """The ISO alpha-3 code of a name: an exact code, name or alias, else the one country whose
    country_converter expression matches ("S. Korea", "Czech Rep.", "Ivory Coast"); None (none or ambiguous).
    whole=True: an expression must match the whole name ("Egyptt" matches none), for configs, which must not
    guess."""
    text = name.strip()
    if not text or len(text) > MAX_NAME:
        return None
    exact = _exact().get(text.lower())
    if exact is not None:
        return exact
    hits = {iso3 for pat, iso3 in _patterns() if (pat.fullmatch(text) if whole else pat.search(text))}
    return hits.pop() if len(hits) == 1 else None


def match_country_whole(name: str) -> str | None:
    """`match_country` where an expression must match the whole name."""
    return match_country(name, whole=True)


def resolve_country(text: str, known: set[str] | None = None) -> str:
    """ISO alpha-3 for a country name, spelling variant or code ("Egypt", "egy", "S. Korea" -> "EGY", "KOR");
    codes in `known` (e.g. a table's own keys) are taken as they are. One-line ConfigError when none matches."""
    t = str(text).strip()
    check_name_length(t)
    if known and t.upper() in known:
        return t.upper()
    iso = match_country(t) if t else None
    if iso is None:
        raise ConfigError(f"unknown country {text!r}; give an English name (e.g. 'Egypt') or an ISO alpha-3 code (EGY)")
    return iso


@cache
def region_name(label: str) -> str:
    """A readable region name from a WVS `N_REGION_ISO` label ("US-IL Illinois" -> "Illinois", "US-IL" -> "Illinois").

    The English name after the ISO 3166-2 code is kept when the label has one; a bare code is looked up in
    pycountry's ISO 3166-2 subdivisions (WVS also has codes outside ISO 3166-2; those keep their label)."""
    import pycountry

    m = re.match(r"^\s*([A-Z]{2}-[A-Z0-9]{1,3})\b[\s:-]*(.*)$", label)
    if m is None:
        return label.strip()
    if m.group(2).strip():
        return m.group(2).strip()
    try:
        sub = pycountry.subdivisions.get(code=m.group(1))
    except (KeyError, LookupError):
        sub = None
    if sub is not None:
        return str(sub.name)
    return m.group(1)
