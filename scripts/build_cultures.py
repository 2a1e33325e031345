"""One-off generator of src/clca/data/cultures.json (figures + country identity only).

Reads the two public figure tables from ../shared/data (or $CLCA_SHARED_DATA):
  culturepark/6-dimensions-for-website-2015-08-16.csv   Hofstede six dimensions (`;` CSV, CRLF, `#NULL!`)
  ethogpt-db/indicesZ.csv                               Inglehart-Welzel map coordinates (raw map scores)
and writes one record per country/region: name and ISO alpha-2/alpha-3 (from country_converter's country
table; regions and sub-national groups, listed below, have none), aliases (the sources' own spellings),
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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clca.countries import countries, match_country  # noqa: E402

# Rows of the sources that are not countries (regions, sub-national groups), written for this project:
# source name -> our display name. They have no ISO code and get a slug id. Every other row is a country,
# matched to its ISO codes and short name with country_converter's country table (see clca.culture).
NON_COUNTRIES: dict[str, str] = {
    "Africa East": "East Africa (region)",
    "Africa West": "West Africa (region)",
    "Arab countries": "Arab countries (region)",
    "Belgium French": "Belgium (French-speaking)",
    "Belgium Netherl": "Belgium (Dutch-speaking)",
    "Canada French": "Canada (French-speaking)",
    "Germany East": "East Germany (former GDR)",
    "Germany West": "West Germany (1981 survey)",
    "Northern Ireland": "Northern Ireland",
    "South Africa white": "South Africa (white population)",
    "Switzerland French": "Switzerland (French-speaking)",
    "Switzerland German": "Switzerland (German-speaking)",
}

# Colloquial names that country_converter's name patterns do not match (everything else they do).
ALIASES: dict[str, list[str]] = {
    "USA": ["America"],
    "NLD": ["Holland"],
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

    table = {c.iso3: c for c in countries()}

    def rec(src_name: str) -> dict:
        if src_name in NON_COUNTRIES:
            name, a2, a3 = NON_COUNTRIES[src_name], None, None
        else:
            a3 = match_country(src_name)
            if a3 is None:
                raise SystemExit(f"{src_name!r} matches no country of country_converter's table; if it is a "
                                 f"region or group, add it to NON_COUNTRIES in {__file__}")  # fmt: skip
            name, a2 = table[a3].name, table[a3].iso2 or None  # the one display name (clca.countries)
        cid = a3 or _slug(name)
        r = records.setdefault(
            cid, {"id": cid, "name": name, "iso2": a2, "iso3": a3, "aliases": [], "hofstede": None, "iw": None}
        )
        for alias in (src_name, table[a3].short_name if a3 else src_name):  # the table's spelling too
            if alias != name and alias not in r["aliases"]:
                r["aliases"].append(alias)
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
