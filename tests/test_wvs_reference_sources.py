"""One source per country in a reference table: the bundled one, and what `aggregate` builds from files that
cover the same country (the bundled USA used to mix 29 items of a weighted 303-respondent file with 15 of an
unweighted 2,596-respondent file, invisibly)."""

from __future__ import annotations

from pathlib import Path

from clca.wvs import load_reference
from clca.wvs._reference import aggregate, sources


def test_bundled_table_has_one_source_per_country() -> None:
    ref = load_reference()
    mixed = {c: sources(ref, c) for c in ref.countries if len(sources(ref, c)) != 1}
    assert mixed == {}
    # the weighted respondent-level files cover the most items (and carry the personas' demographics)
    # 44 items + the 9 cultural-map questions (docs/cultural-map.md); Egypt lacks Q25, Q36 and Q182
    assert sources(ref, "USA") == [("us_wvs_wave7_v7_n303.csv", True)] and len(ref.countries["USA"].items) == 53
    assert sources(ref, "EGY") == [("eg_wvs_wave7_v7_n303.csv", True)] and len(ref.countries["EGY"].items) == 50
    assert sources(ref, "JOR") == [("Arabic.csv", False)]
    for c in ("USA", "EGY"):
        assert {m.source for m in ref.countries[c].marginals.values()} == {sources(ref, c)[0][0]}
    assert "One source file per country" in ref.note


def test_aggregate_takes_each_country_from_one_file(shared_data: Path) -> None:
    small = shared_data / "cultural-trends" / "us_wvs_wave7_v7_n303.csv"  # weighted, 303 respondents, 44 items
    large = shared_data / "culturellm" / "United States.csv"  # unweighted, ~2,590 respondents, 15 items
    for order in ((small, large), (large, small)):
        table = aggregate(order)
        usa = table.countries["USA"]
        assert sources(table, "USA") == [(small.name, True)]  # the most items; before: 15 items from `large`
        assert len(usa.items) == 44 and all(d.n <= 303 for d in usa.items.values())
        assert {m.source for m in usa.marginals.values()} == {small.name}
    assert sources(aggregate([large]), "USA") == [(large.name, False)]
