"""Country identities: ISO 3166 alpha-3 <-> numeric code <-> English name, and regions (ISO 3166-2).

Names and spellings are resolved with `country_converter` (its regular expressions cover common
variants and Pew's spellings such as "S. Korea", "Czech Rep." and "Taiwan ROC"); numeric codes and
subdivisions with `pycountry`. Only what neither library knows is listed here: the WVS code 909
(Northern Ireland, a separate sample in WVS-7 without an ISO 3166-1 code) and a few English names.
This is the one place that turns a country string into an ISO alpha-3 code for the WVS/GlobalOpinionQA side.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# WVS-specific countries that are not ISO 3166-1 entries: alpha-3 used by WVS -> (numeric, name).
_WVS_ONLY: dict[str, tuple[int, str]] = {"NIR": (909, "Northern Ireland")}
# Names used in prompts where the library's short name differs from the common English one.
_NAME_OVERRIDES = {"TUR": "Turkey", "MAC": "Macao"}
# Spellings neither library resolves (checked against country_converter 1.3).
_EXTRA_SPELLINGS = {"america": "USA", "northern ireland": "NIR", "n. ireland": "NIR"}


@cache
def _converter() -> Any:
    """country_converter's converter, loaded with NA (Namibia) kept as text (its own loader turns it into NaN
    with pandas >= 3)."""
    import country_converter as coco
    import pandas as pd

    logging.getLogger("country_converter").setLevel(logging.ERROR)
    data = pd.read_csv(_data_file(), sep="\t", encoding="utf-8", dtype=str, keep_default_na=False)
    data = data.replace({"": None})
    return coco.CountryConverter(country_data=data)


@cache
def _known_iso3() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.countries) | frozenset(_WVS_ONLY)


def iso3_from_numeric(code: int) -> str | None:
    """ISO alpha-3 of an ISO 3166-1 numeric code (WVS `B_COUNTRY`); None when unknown."""
    import pycountry

    for iso, (num, _) in _WVS_ONLY.items():
        if num == code:
            return iso
    c = pycountry.countries.get(numeric=f"{code:03d}") if code >= 0 else None
    return c.alpha_3 if c is not None else None


def _data_file() -> Path:
    """country_converter's country table, found without importing the package (which imports pandas)."""
    spec = importlib.util.find_spec("country_converter")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("country_converter is not installed (pip install country_converter)")
    return Path(next(iter(spec.submodule_search_locations))) / "country_data.tsv"


@cache
def _names() -> dict[str, str]:
    """ISO3 -> short English name, from country_converter's own table (read directly: no pandas, milliseconds)."""
    import csv

    with _data_file().open(encoding="utf-8", newline="") as fh:
        return {r["ISO3"]: r["name_short"] for r in csv.DictReader(fh, delimiter="\t") if r.get("ISO3")}


@cache
def country_name(iso3: str) -> str:
    """Common English short name ("KOR" -> "South Korea"); the code itself when unknown."""
    if iso3 in _WVS_ONLY:
        return _WVS_ONLY[iso3][1]
    if iso3 in _NAME_OVERRIDES:
        return _NAME_OVERRIDES[iso3]
    return _names().get(iso3, iso3)


@cache
def _by_name() -> dict[str, str]:
    out = {name.lower(): iso for iso, name in _names().items()}
    out.update({name.lower(): iso for iso, name in _NAME_OVERRIDES.items()})
    out.update({name.lower(): iso for iso, (_, name) in _WVS_ONLY.items()})
    return out


@cache
def _lookup(text: str) -> str | None:
    low = text.strip().lower()
    if low in _EXTRA_SPELLINGS:
        return _EXTRA_SPELLINGS[low]
    if re.fullmatch(r"[a-z]{3}", low) and low.upper() in _known_iso3():
        return low.upper()
    exact = _by_name().get(low)
    if exact is not None:
        return exact
    iso = _converter().convert(text.strip(), to="ISO3", not_found=None)
    if isinstance(iso, str) and iso in _known_iso3():
        return iso
    return None


def resolve_country(text: str, known: set[str] | None = None) -> str:
    """ISO alpha-3 for a country name, spelling variant or code ("Egypt", "egy", "S. Korea" -> "EGY", "KOR")."""
    t = str(text).strip()
    if known and t.upper() in known:
        return t.upper()
    iso = _lookup(t) if t else None
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
