"""Hofstede's regional rows as the fallback for countries without scores of their own.

The countries themselves (codes, display names, name matching) are `clca.countries`'; this module only
says which regional row of Hofstede's table stands in for a country:
  "Arab countries"  the member states of the League of Arab States (22, listed below);
  "Africa East"     the countries of the UN M49 sub-region "Eastern Africa" (from the country table);
  "Africa West"     the countries of the UN M49 sub-region "Western Africa" (from the country table).
A country in both (e.g. Somalia) takes the Arab countries row, the first that applies.
"""

from __future__ import annotations

from ..countries import country

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


def region_of(iso3: str | None) -> str | None:
    """The culture id of the Hofstede regional row that stands in for a country, or None."""
    if iso3 is None:
        return None
    if iso3 in ARAB_LEAGUE:
        return "arab-countries-region"
    c = country(iso3)
    sub = c.un_region if c is not None else None
    return next((rid for rid, un in _UN_SUBREGION.items() if un == sub), None)
