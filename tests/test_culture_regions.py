"""Every country has a profile: country_converter's table, Hofstede's regional rows as the fallback,
name matching with the library's patterns, and the source counts of `clca culture list`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clca.cli.main import main
from clca.countries import SURVEY_ONLY, countries, match_country
from clca.culture import HOFSTEDE_DIMS, get_culture, list_cultures, region_of, source_counts
from clca.culture._countries import ARAB_LEAGUE


def _clca(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ei:
        main(list(args))
    out = capsys.readouterr()
    return int(ei.value.code or 0), out.out, out.err


def test_egypt_gets_its_regions_scores_and_says_so() -> None:
    egy = get_culture("Egypt")
    arab = get_culture("Arab countries")
    assert egy.hofstede is not None and egy.hofstede.pdi is None  # the shipped own figures stay as they are
    assert egy.hofstede_region is not None and egy.hofstede_region.region_id == arab.id
    scores = egy.hofstede_scores()
    assert list(scores) == list(HOFSTEDE_DIMS)  # six dimensions
    assert arab.hofstede is not None
    for d in ("pdi", "idv", "mas", "uai"):
        assert scores[d] == getattr(arab.hofstede, d)
    assert (scores["lto"], scores["ivr"]) == (egy.hofstede.lto, egy.hofstede.ivr)  # own scores win
    assert egy.hofstede_source() == "own + region"
    text = egy.describe()
    assert len(egy.hofstede_phrases()) == 6 and "highly hierarchical" in text
    assert "no score of its own for power distance, individualism, masculinity, uncertainty avoidance" in text
    assert "Arab countries" in text


def test_every_country_has_a_profile() -> None:
    iso3 = {c.iso3 for c in list_cultures() if c.iso3}
    table = {k.iso3 for k in countries() if k.iso3 not in SURVEY_ONLY}
    assert table <= iso3 and len(table) >= 245  # every current country of the library's table
    for code in ("KWT", "OMN", "SOM", "KEN", "SLE", "GMB"):  # no shipped row of their own
        c = get_culture(code)
        assert c.hofstede is None and c.hofstede_source() == "region", code
        assert len(c.hofstede_scores()) == 6 and c.hofstede_region is not None
        assert c.hofstede_region.region in c.describe()
    assert region_of("SOM") == "arab-countries-region"  # Arab League first, then the UN sub-region
    assert region_of("KEN") == "east-africa-region" and region_of("NGA") == "west-africa-region"
    assert region_of("JPN") is None and region_of(None) is None
    assert {region_of(c) for c in ARAB_LEAGUE} == {"arab-countries-region"} and len(ARAB_LEAGUE) == 22
    nothing = get_culture("Åland Islands")  # a country without any figures still resolves, and says so
    assert nothing.hofstede_source() == "none" and nothing.describe().startswith("No cultural figures")
    jp = get_culture("Japan")
    assert jp.hofstede_source() == "own" and jp.hofstede_region is None


def test_names_resolve_with_the_librarys_patterns() -> None:
    assert match_country("S. Korea") == "KOR" and get_culture("S. Korea").code == "KOR"
    assert get_culture("Czech Rep.").code == "CZE" and get_culture("Taiwan ROC").code == "TWN"
    assert get_culture("Ivory Coast").code == "CIV" and get_culture("Republic of Korea").code == "KOR"
    assert get_culture("State of Kuwait").code == "KWT"  # official names from the table
    assert match_country("Atlantis") is None and match_country("") is None


def test_source_counts_add_up() -> None:
    counts = source_counts()
    assert set(counts) == {"own", "own + region", "region", "own (partial)", "none"}
    countries_ = [c for c in list_cultures() if c.iso3]
    assert sum(counts.values()) == len(countries_)
    assert counts["own"] >= 60 and counts["region"] >= 30 and counts["own + region"] >= 2


@pytest.mark.shared
def test_regional_scores_are_the_public_rows(shared_data: Path) -> None:
    path = shared_data / "culturepark" / "6-dimensions-for-website-2015-08-16.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = {r["country"].strip(): r for r in csv.DictReader(f, delimiter=";")}
    for name, region_row in (("Kuwait", "Arab countries"), ("Kenya", "Africa East"), ("Ghana", "Africa West")):
        c = get_culture(name)
        row = rows[region_row]
        own = c.hofstede.present() if c.hofstede else {}
        for ours, theirs in zip(HOFSTEDE_DIMS, ("pdi", "idv", "mas", "uai", "ltowvs", "ivr"), strict=True):
            cell = row[theirs].strip()
            if ours not in own and cell != "#NULL!":
                assert c.hofstede_scores()[ours] == float(cell), (name, ours)


def test_cli_show_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _clca(capsys, "culture", "show", "Egypt")
    assert code == 0, err
    assert "pdi=80*" in out and "lto=7 " in out and "from the Arab countries regional row" in out
    assert get_culture("Egypt").describe() in out
    code, out, err = _clca(capsys, "culture", "list")
    assert code == 0, err
    counts = source_counts()
    last = out.splitlines()[-1]
    assert last == f"{sum(counts.values())} countries; Hofstede scores: " + ", ".join(
        f"{k} {v}" for k, v in counts.items()
    )
    assert any(line.startswith("EGY  Egypt") and line.endswith("own + region") for line in out.splitlines())
    code, out, err = _clca(capsys, "culture", "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(list_cultures())
    egy = next(r for r in rows if r["iso3"] == "EGY")
    assert egy["hofstede_source"] == "own + region" and egy["hofstede_region"]["region"] == "Arab countries"
