"""Country identities: ISO 3166 alpha-3 <-> numeric code <-> English name (WVS-7 countries and a few more)."""

from __future__ import annotations

from ..errors import ConfigError

# alpha-3: (numeric code as used in B_COUNTRY, English name)
COUNTRIES: dict[str, tuple[int, str]] = {
    "AND": (20, "Andorra"), "ARG": (32, "Argentina"), "ARM": (51, "Armenia"), "AUS": (36, "Australia"),
    "AUT": (40, "Austria"), "BGD": (50, "Bangladesh"), "BOL": (68, "Bolivia"), "BRA": (76, "Brazil"),
    "CAN": (124, "Canada"), "CHL": (152, "Chile"), "CHN": (156, "China"), "COL": (170, "Colombia"),
    "CYP": (196, "Cyprus"), "CZE": (203, "Czechia"), "DEU": (276, "Germany"), "DZA": (12, "Algeria"),
    "ECU": (218, "Ecuador"), "EGY": (818, "Egypt"), "ESP": (724, "Spain"), "ETH": (231, "Ethiopia"),
    "FRA": (250, "France"), "GBR": (826, "United Kingdom"), "GRC": (300, "Greece"), "GTM": (320, "Guatemala"),
    "HKG": (344, "Hong Kong"), "IDN": (360, "Indonesia"), "IND": (356, "India"), "IRN": (364, "Iran"),
    "IRQ": (368, "Iraq"), "ITA": (380, "Italy"), "JOR": (400, "Jordan"), "JPN": (392, "Japan"),
    "KAZ": (398, "Kazakhstan"), "KEN": (404, "Kenya"), "KGZ": (417, "Kyrgyzstan"), "KOR": (410, "South Korea"),
    "LBN": (422, "Lebanon"), "LBY": (434, "Libya"), "MAC": (446, "Macao"), "MAR": (504, "Morocco"),
    "MDV": (462, "Maldives"), "MEX": (484, "Mexico"), "MMR": (104, "Myanmar"), "MNG": (496, "Mongolia"),
    "MYS": (458, "Malaysia"), "NGA": (566, "Nigeria"), "NIC": (558, "Nicaragua"), "NIR": (909, "Northern Ireland"),
    "NLD": (528, "Netherlands"), "NZL": (554, "New Zealand"), "PAK": (586, "Pakistan"), "PER": (604, "Peru"),
    "PHL": (608, "Philippines"), "POL": (616, "Poland"), "PRI": (630, "Puerto Rico"), "ROU": (642, "Romania"),
    "RUS": (643, "Russia"), "SAU": (682, "Saudi Arabia"), "SGP": (702, "Singapore"), "SRB": (688, "Serbia"),
    "SVK": (703, "Slovakia"), "SWE": (752, "Sweden"), "THA": (764, "Thailand"), "TJK": (762, "Tajikistan"),
    "TUN": (788, "Tunisia"), "TUR": (792, "Turkey"), "TWN": (158, "Taiwan"), "UKR": (804, "Ukraine"),
    "URY": (858, "Uruguay"), "USA": (840, "United States"), "UZB": (860, "Uzbekistan"), "VEN": (862, "Venezuela"),
    "VNM": (704, "Vietnam"), "ZWE": (716, "Zimbabwe"),
}  # fmt: skip

_ALIASES = {
    "us": "USA", "usa": "USA", "united states of america": "USA", "america": "USA", "uk": "GBR",
    "great britain": "GBR", "britain": "GBR", "england": "GBR", "korea": "KOR", "republic of korea": "KOR",
    "korea south": "KOR", "russian federation": "RUS", "viet nam": "VNM", "turkiye": "TUR", "czech republic": "CZE",
}  # fmt: skip

_BY_NUM = {num: iso for iso, (num, _) in COUNTRIES.items()}
_BY_NAME = {name.lower(): iso for iso, (_, name) in COUNTRIES.items()}


def iso3_from_numeric(code: int) -> str | None:
    return _BY_NUM.get(code)


def country_name(iso3: str) -> str:
    return COUNTRIES.get(iso3, (0, iso3))[1]


def resolve_country(text: str, known: set[str] | None = None) -> str:
    """ISO alpha-3 for a country name, alias or code ("Egypt", "egy", "United States" -> "EGY", "USA")."""
    t = text.strip()
    if t.upper() in COUNTRIES or (known and t.upper() in known):
        return t.upper()
    low = t.lower()
    if low in _BY_NAME:
        return _BY_NAME[low]
    if low in _ALIASES:
        return _ALIASES[low]
    raise ConfigError(f"unknown country {text!r}; give an English name (e.g. 'Egypt') or an ISO alpha-3 code (EGY)")
