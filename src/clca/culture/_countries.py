"""Every country: identity and name matching from country_converter's country table, and Hofstede's
regional rows as the fallback for countries without scores of their own.

country_converter (a well-kept library) ships its table as a tab-separated file: ISO codes, short and
official names, a name-matching regular expression per country and the UN M49 sub-region. We read that
file directly (fast, and independent of the pandas version its converter class needs).

Regional rows of Hofstede's table and the countries they stand in for:
  "Arab countries"  the member states of the League of Arab States (22, listed below);
  "Africa East"     the countries of the UN M49 sub-region "Eastern Africa" (from the table);
  "Africa West"     the countries of the UN M49 sub-region "Western Africa" (from the table).
A country in both (e.g. Somalia) takes the Arab countries row, the first that applies.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache

#: League of Arab States member states (ISO 3166 alpha-3), as listed by the League.
ARAB_LEAGUE = frozenset(
    "DZA BHR COM DJI EGY IRQ JOR KWT LBN LBY MRT MAR OMN PSE QAT SAU SOM SDN SYR TUN ARE YEM".split()
)

#: Hofstede regional row (our culture id) -> (how its members are chosen, the members' test)
REGION_ROWS: tuple[tuple[str, str], ...] = (
    ("arab-countries-region", "member states of the League of Arab States"),
    ("east-africa-region", "UN M49 sub-region Eastern Africa"),
    ("west-africa-region", "UN M49 sub-region Western Africa"),
)
_UN_SUBREGION = {"east-africa-region": "Eastern Africa", "west-africa-region": "Western Africa"}


@dataclass(frozen=True)
class Country:
    iso2: str
    iso3: str
    name: str
    official_name: str
    un_region: str
    pattern: str


def _table_path() -> str:
    """country_converter's country_data.tsv, found without importing the package (which imports pandas)."""
    import importlib.util
    from pathlib import Path

    from ..errors import DataError

    spec = importlib.util.find_spec("country_converter")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "country_data.tsv"
        if path.is_file():
            return str(path)
    raise DataError("country_converter's country table (country_data.tsv) not found; pip install country_converter")


def _first_code(cell: str) -> str:
    """The ISO alpha-2 code of a table cell; a few cells are patterns such as '^GB$|^UK$'."""
    codes = re.findall(r"[A-Z]{2}", cell)
    return codes[0] if codes else ""


@lru_cache(maxsize=1)
def countries() -> tuple[Country, ...]:
    """The current countries of country_converter's table (obsolete entries left out)."""
    out: list[Country] = []
    with open(_table_path(), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if r.get("obsolete", "").strip() or not re.fullmatch(r"[A-Z]{3}", r.get("ISO3", "")):
                continue
            out.append(
                Country(
                    iso2=_first_code(r["ISO2"]),
                    iso3=r["ISO3"].strip(),
                    name=r["name_short"].strip(),
                    official_name=r["name_official"].strip(),
                    un_region=r["UNregion"].strip(),
                    pattern=r["regex"],
                )
            )
    return tuple(out)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(c.pattern, re.IGNORECASE), c.iso3) for c in countries())


@lru_cache(maxsize=1024)
def match_country(name: str) -> str | None:
    """The ISO alpha-3 code a country name matches with country_converter's regular expressions
    ("S. Korea", "Czech Rep.", "Republic of Korea", "Ivory Coast", ...), or None (none or ambiguous)."""
    text = name.strip()
    if not text or len(text) > 100:  # no country name is longer (clca.culture._registry.MAX_NAME)
        return None
    hits = {iso3 for pat, iso3 in _patterns() if pat.search(text)}
    return hits.pop() if len(hits) == 1 else None


def region_of(iso3: str | None) -> str | None:
    """The culture id of the Hofstede regional row that stands in for a country, or None."""
    if iso3 is None:
        return None
    if iso3 in ARAB_LEAGUE:
        return "arab-countries-region"
    sub = next((c.un_region for c in countries() if c.iso3 == iso3), None)
    return next((rid for rid, un in _UN_SUBREGION.items() if un == sub), None)
