"""One-off generator of src/clca/data/cultures.json (figures + country identity only).

Reads the two public figure tables from ../shared/data (or $CLCA_SHARED_DATA):
  culturepark/6-dimensions-for-website-2015-08-16.csv   Hofstede six dimensions (`;` CSV, CRLF, `#NULL!`)
  ethogpt-db/indicesZ.csv                               Inglehart-Welzel map coordinates (raw map scores)
and writes one record per country/region: name, ISO alpha-2/alpha-3 (our own mapping below), aliases,
Hofstede scores (null where missing, never 0) and the IW coordinates with their survey year.
No text is copied from the sources; only numbers are re-expressed.

Usage:  python scripts/build_cultures.py [--shared-data DIR] [--out src/clca/data/cultures.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name (as written in either source) -> (canonical name, ISO alpha-2, ISO alpha-3). Written for this project.
# Regions and sub-national groups have no ISO code (None) and get a slug id instead.
ISO: dict[str, tuple[str, str | None, str | None]] = {
    "Albania": ("Albania", "AL", "ALB"),
    "Algeria": ("Algeria", "DZ", "DZA"),
    "Andorra": ("Andorra", "AD", "AND"),
    "Argentina": ("Argentina", "AR", "ARG"),
    "Armenia": ("Armenia", "AM", "ARM"),
    "Australia": ("Australia", "AU", "AUS"),
    "Austria": ("Austria", "AT", "AUT"),
    "Azerbaijan": ("Azerbaijan", "AZ", "AZE"),
    "Bangladesh": ("Bangladesh", "BD", "BGD"),
    "Belarus": ("Belarus", "BY", "BLR"),
    "Belgium": ("Belgium", "BE", "BEL"),
    "Bolivia": ("Bolivia", "BO", "BOL"),
    "Bosnia": ("Bosnia and Herzegovina", "BA", "BIH"),
    "Bosnia and Herzegovina": ("Bosnia and Herzegovina", "BA", "BIH"),
    "Brazil": ("Brazil", "BR", "BRA"),
    "Bulgaria": ("Bulgaria", "BG", "BGR"),
    "Burkina Faso": ("Burkina Faso", "BF", "BFA"),
    "Canada": ("Canada", "CA", "CAN"),
    "Chile": ("Chile", "CL", "CHL"),
    "China": ("China", "CN", "CHN"),
    "Colombia": ("Colombia", "CO", "COL"),
    "Costa Rica": ("Costa Rica", "CR", "CRI"),
    "Croatia": ("Croatia", "HR", "HRV"),
    "Cyprus": ("Cyprus", "CY", "CYP"),
    "Czech Rep": ("Czechia", "CZ", "CZE"),
    "Czechia": ("Czechia", "CZ", "CZE"),
    "Denmark": ("Denmark", "DK", "DNK"),
    "Dominican Rep": ("Dominican Republic", "DO", "DOM"),
    "Dominican Republic": ("Dominican Republic", "DO", "DOM"),
    "Ecuador": ("Ecuador", "EC", "ECU"),
    "Egypt": ("Egypt", "EG", "EGY"),
    "El Salvador": ("El Salvador", "SV", "SLV"),
    "Estonia": ("Estonia", "EE", "EST"),
    "Ethiopia": ("Ethiopia", "ET", "ETH"),
    "Finland": ("Finland", "FI", "FIN"),
    "France": ("France", "FR", "FRA"),
    "Georgia": ("Georgia", "GE", "GEO"),
    "Germany": ("Germany", "DE", "DEU"),
    "Ghana": ("Ghana", "GH", "GHA"),
    "Great Britain": ("United Kingdom", "GB", "GBR"),
    "Greece": ("Greece", "GR", "GRC"),
    "Guatemala": ("Guatemala", "GT", "GTM"),
    "Haiti": ("Haiti", "HT", "HTI"),
    "Hong Kong": ("Hong Kong", "HK", "HKG"),
    "Hong Kong SAR": ("Hong Kong", "HK", "HKG"),
    "Hungary": ("Hungary", "HU", "HUN"),
    "Iceland": ("Iceland", "IS", "ISL"),
    "India": ("India", "IN", "IND"),
    "Indonesia": ("Indonesia", "ID", "IDN"),
    "Iran": ("Iran", "IR", "IRN"),
    "Iraq": ("Iraq", "IQ", "IRQ"),
    "Ireland": ("Ireland", "IE", "IRL"),
    "Israel": ("Israel", "IL", "ISR"),
    "Italy": ("Italy", "IT", "ITA"),
    "Jamaica": ("Jamaica", "JM", "JAM"),
    "Japan": ("Japan", "JP", "JPN"),
    "Jordan": ("Jordan", "JO", "JOR"),
    "Kazakhstan": ("Kazakhstan", "KZ", "KAZ"),
    "Kenya": ("Kenya", "KE", "KEN"),
    "Korea South": ("South Korea", "KR", "KOR"),
    "South Korea": ("South Korea", "KR", "KOR"),
    "Kosovo": ("Kosovo", "XK", "XKX"),  # user-assigned code in common use, not an official ISO 3166 entry
    "Kyrgyz Rep": ("Kyrgyzstan", "KG", "KGZ"),
    "Kyrgyzstan": ("Kyrgyzstan", "KG", "KGZ"),
    "Latvia": ("Latvia", "LV", "LVA"),
    "Lebanon": ("Lebanon", "LB", "LBN"),
    "Libya": ("Libya", "LY", "LBY"),
    "Lithuania": ("Lithuania", "LT", "LTU"),
    "Luxembourg": ("Luxembourg", "LU", "LUX"),
    "Macau SAR": ("Macao", "MO", "MAC"),
    "Macedonia Rep": ("North Macedonia", "MK", "MKD"),
    "North Macedonia": ("North Macedonia", "MK", "MKD"),
    "Malaysia": ("Malaysia", "MY", "MYS"),
    "Maldives": ("Maldives", "MV", "MDV"),
    "Mali": ("Mali", "ML", "MLI"),
    "Malta": ("Malta", "MT", "MLT"),
    "Mexico": ("Mexico", "MX", "MEX"),
    "Moldova": ("Moldova", "MD", "MDA"),
    "Mongolia": ("Mongolia", "MN", "MNG"),
    "Montenegro": ("Montenegro", "ME", "MNE"),
    "Morocco": ("Morocco", "MA", "MAR"),
    "Myanmar": ("Myanmar", "MM", "MMR"),
    "Netherlands": ("Netherlands", "NL", "NLD"),
    "New Zealand": ("New Zealand", "NZ", "NZL"),
    "Nicaragua": ("Nicaragua", "NI", "NIC"),
    "Nigeria": ("Nigeria", "NG", "NGA"),
    "Norway": ("Norway", "NO", "NOR"),
    "Pakistan": ("Pakistan", "PK", "PAK"),
    "Palestine": ("Palestine", "PS", "PSE"),
    "Panama": ("Panama", "PA", "PAN"),
    "Peru": ("Peru", "PE", "PER"),
    "Philippines": ("Philippines", "PH", "PHL"),
    "Poland": ("Poland", "PL", "POL"),
    "Portugal": ("Portugal", "PT", "PRT"),
    "Puerto Rico": ("Puerto Rico", "PR", "PRI"),
    "Qatar": ("Qatar", "QA", "QAT"),
    "Romania": ("Romania", "RO", "ROU"),
    "Russia": ("Russia", "RU", "RUS"),
    "Rwanda": ("Rwanda", "RW", "RWA"),
    "Saudi Arabia": ("Saudi Arabia", "SA", "SAU"),
    "Serbia": ("Serbia", "RS", "SRB"),
    "Singapore": ("Singapore", "SG", "SGP"),
    "Slovak Rep": ("Slovakia", "SK", "SVK"),
    "Slovakia": ("Slovakia", "SK", "SVK"),
    "Slovenia": ("Slovenia", "SI", "SVN"),
    "South Africa": ("South Africa", "ZA", "ZAF"),
    "Spain": ("Spain", "ES", "ESP"),
    "Suriname": ("Suriname", "SR", "SUR"),
    "Sweden": ("Sweden", "SE", "SWE"),
    "Switzerland": ("Switzerland", "CH", "CHE"),
    "Taiwan": ("Taiwan", "TW", "TWN"),
    "Taiwan ROC": ("Taiwan", "TW", "TWN"),
    "Tajikistan": ("Tajikistan", "TJ", "TJK"),
    "Tanzania": ("Tanzania", "TZ", "TZA"),
    "Thailand": ("Thailand", "TH", "THA"),
    "Trinidad and Tobago": ("Trinidad and Tobago", "TT", "TTO"),
    "Tunisia": ("Tunisia", "TN", "TUN"),
    "Turkey": ("Turkey", "TR", "TUR"),
    "U.S.A.": ("United States", "US", "USA"),
    "United States": ("United States", "US", "USA"),
    "Uganda": ("Uganda", "UG", "UGA"),
    "Ukraine": ("Ukraine", "UA", "UKR"),
    "Uruguay": ("Uruguay", "UY", "URY"),
    "Uzbekistan": ("Uzbekistan", "UZ", "UZB"),
    "Venezuela": ("Venezuela", "VE", "VEN"),
    "Vietnam": ("Vietnam", "VN", "VNM"),
    "Yemen": ("Yemen", "YE", "YEM"),
    "Zambia": ("Zambia", "ZM", "ZMB"),
    "Zimbabwe": ("Zimbabwe", "ZW", "ZWE"),
    # regions and sub-national groups (no ISO code)
    "Africa East": ("East Africa (region)", None, None),
    "Africa West": ("West Africa (region)", None, None),
    "Arab countries": ("Arab countries (region)", None, None),
    "Belgium French": ("Belgium (French-speaking)", None, None),
    "Belgium Netherl": ("Belgium (Dutch-speaking)", None, None),
    "Canada French": ("Canada (French-speaking)", None, None),
    "Germany East": ("East Germany (former GDR)", None, None),
    "Germany West": ("West Germany (1981 survey)", None, None),
    "Northern Ireland": ("Northern Ireland", None, None),
    "South Africa white": ("South Africa (white population)", None, None),
    "Switzerland French": ("Switzerland (French-speaking)", None, None),
    "Switzerland German": ("Switzerland (German-speaking)", None, None),
}

# Extra lookup names, written for this project (case-insensitive at lookup time).
ALIASES: dict[str, list[str]] = {
    "GBR": ["UK", "U.K.", "Britain", "Great Britain", "England", "United Kingdom of Great Britain"],
    "USA": ["US", "U.S.", "U.S.A.", "America", "United States of America"],
    "KOR": ["Korea", "South Korea", "Korea South", "Republic of Korea"],
    "CZE": ["Czech Republic", "Czech Rep"],
    "SVK": ["Slovak Republic", "Slovak Rep"],
    "KGZ": ["Kyrgyz Republic", "Kyrgyz Rep"],
    "DOM": ["Dominican Rep"],
    "MKD": ["Macedonia", "Macedonia Rep"],
    "BIH": ["Bosnia"],
    "HKG": ["Hong Kong SAR"],
    "MAC": ["Macau", "Macau SAR"],
    "TWN": ["Taiwan ROC"],
    "RUS": ["Russian Federation"],
    "IRN": ["Persia"],
    "TUR": ["Turkiye", "Türkiye"],
    "NLD": ["Holland", "The Netherlands"],
    "VNM": ["Viet Nam"],
    "CHN": ["PRC", "People's Republic of China", "Mainland China"],
    "ARE": ["UAE"],
}

HOFSTEDE_SOURCE = {
    "dataset": "Hofstede six cultural dimensions, '6-dimensions-for-website-2015-08-16'",
    "url": "https://geerthofstede.com (public download), as redistributed in "
    "https://github.com/Scarelette/CulturePark (commit a5dc627e)",
    "citation": "Hofstede, G., Hofstede, G. J., & Minkov, M. (2010). Cultures and Organizations: Software of the "
    "Mind, 3rd ed.",
    "note": "lto is the WVS-based long-term orientation column (ltowvs); missing values are null",
}
IW_SOURCE = {
    "dataset": "Inglehart-Welzel cultural map coordinates per country (raw map scores), EthoGPT-DB indicesZ.csv",
    "url": "https://github.com/sunshineluyao/EthoGPT-DB (commit 05fcd062, MIT)",
    "citation": "Inglehart, R. & Welzel, C., World Values Survey / Integrated Values Surveys cultural map",
    "note": "traditional_secular > 0 = secular; survival_self_expression > 0 = self-expression",
}


def _num(cell: str) -> float | None:
    cell = cell.strip()
    if cell in ("", "#NULL!"):
        return None
    v = float(cell)
    return int(v) if v.is_integer() else v


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def build(shared: Path) -> dict:
    records: dict[str, dict] = {}

    def rec(src_name: str) -> dict:
        if src_name not in ISO:
            raise SystemExit(f"no ISO mapping for {src_name!r}; add it to ISO in {__file__}")
        name, a2, a3 = ISO[src_name]
        cid = a3 or _slug(name)
        r = records.setdefault(
            cid, {"id": cid, "name": name, "iso2": a2, "iso3": a3, "aliases": [], "hofstede": None, "iw": None}
        )
        if src_name != name and src_name not in r["aliases"]:
            r["aliases"].append(src_name)
        return r

    hof = shared / "culturepark" / "6-dimensions-for-website-2015-08-16.csv"
    with hof.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=";"):
            r = rec(row["country"].strip())
            r["hofstede"] = {
                "pdi": _num(row["pdi"]),
                "idv": _num(row["idv"]),
                "mas": _num(row["mas"]),
                "uai": _num(row["uai"]),
                "lto": _num(row["ltowvs"]),
                "ivr": _num(row["ivr"]),
            }

    iw = shared / "ethogpt-db" / "indicesZ.csv"
    with iw.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["Traditional_vs_Secular"].strip():
                continue  # the model-generated summary row has no survey figures
            r = rec(row["Country"].strip())
            year = re.search(r"\((\d{4})\)", row["Year"])
            r["iw"] = {
                "traditional_secular": float(row["Traditional_vs_Secular"]),
                "survival_self_expression": float(row["Survival_vs_SelfExpression"]),
                "year": int(year.group(1)) if year else None,
            }

    for cid, extra in ALIASES.items():
        if cid in records:
            for a in extra:
                if a not in records[cid]["aliases"] and a != records[cid]["name"]:
                    records[cid]["aliases"].append(a)

    return {
        "about": "Country culture figures for clca, generated by scripts/build_cultures.py. Figures only.",
        "sources": {"hofstede": HOFSTEDE_SOURCE, "iw": IW_SOURCE},
        "cultures": sorted(records.values(), key=lambda r: r["name"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = Path(os.environ.get("CLCA_SHARED_DATA", ROOT.parent / "shared" / "data"))
    ap.add_argument("--shared-data", type=Path, default=default_shared)
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "clca" / "data" / "cultures.json")
    args = ap.parse_args()
    data = build(args.shared_data)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    n = len(data["cultures"])
    nh = sum(c["hofstede"] is not None for c in data["cultures"])
    ni = sum(c["iw"] is not None for c in data["cultures"])
    print(f"wrote {args.out}: {n} cultures ({nh} with Hofstede, {ni} with IW map)")


if __name__ == "__main__":
    main()
