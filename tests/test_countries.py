"""One country resolver (`clca.countries`): every country of every bundled table resolves through it, one
display name per country everywhere (role-play and survey prompts of one run included), survey spellings
as aliases, bounded names, and no other module reading a country table or matching names itself."""

from __future__ import annotations

import ast
import json
import time
from importlib import resources
from pathlib import Path

import pytest

from clca.countries import (
    DISPLAY_NAMES,
    MAX_NAME,
    SURVEY_ONLY,
    countries,
    country_name,
    iso3_from_iso2,
    iso3_from_numeric,
    match_country,
    resolve_country,
)
from clca.culture import UnknownCultureError, get_culture, list_cultures, resolve_culture
from clca.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "clca"


def test_every_country_of_the_table_resolves_to_itself() -> None:
    table = countries()
    assert len(table) >= 250 and len({c.iso3 for c in table}) == len(table)
    for c in table:
        for spelling in (c.iso3, c.iso3.lower(), c.name, c.name.upper(), c.short_name, c.iso2):
            if spelling:
                assert resolve_country(spelling) == c.iso3, (spelling, c.iso3)
        assert country_name(c.iso3) == c.name
        if c.numeric is not None:
            assert iso3_from_numeric(c.numeric) == c.iso3
        if c.iso2:
            assert iso3_from_iso2(c.iso2) == c.iso3


def test_survey_spellings_are_aliases_of_one_display_name() -> None:
    for spellings, iso3, display in (
        (("Türkiye", "Turkey", "turkey", "TUR", "TR", "Republic of Türkiye"), "TUR", "Turkey"),
        (("Macau", "Macao", "Macau SAR", "MAC"), "MAC", "Macao"),
        (("S. Korea", "Republic of Korea", "South Korea"), "KOR", "South Korea"),
        (("America", "United States", "USA"), "USA", "United States"),
    ):
        for s in spellings:
            assert resolve_country(s) == iso3, s
            culture = get_culture(s)
            assert culture.code == iso3 and culture.name == display, s
        assert country_name(iso3) == display
    assert resolve_country("Northern Ireland") == "NIR" and iso3_from_numeric(909) == "NIR"
    assert country_name("NIR") == "Northern Ireland" and set(SURVEY_ONLY) == {"NIR"}


def test_every_bundled_table_names_countries_with_the_resolver() -> None:
    # culture profiles: every country profile carries the display name; every name and alias resolves back
    cultures = [c for c in list_cultures() if c.iso3]
    assert len(cultures) >= 245
    for c in cultures:
        assert c.name == country_name(c.iso3), c.iso3
        for spelling in (c.name, c.iso3, *(c.aliases or [])):
            assert get_culture(spelling).code == c.iso3, (spelling, c.iso3)
    shipped = json.loads(resources.files("clca").joinpath("data/cultures.json").read_text(encoding="utf-8"))
    for rec in shipped["cultures"]:
        if rec["iso3"]:
            assert rec["name"] == country_name(rec["iso3"]) and match_country(rec["name"]) == rec["iso3"]
    # the shipped WVS reference table: keys are codes of the resolver, names its display names
    ref = json.loads(resources.files("clca").joinpath("data/wvs/reference.json").read_text(encoding="utf-8"))
    assert ref["countries"]
    for iso3, row in ref["countries"].items():
        assert resolve_country(iso3) == iso3 and row["name"] == country_name(iso3), iso3
    # Faker locales: every override names a country, and every locale region resolves to one
    from clca.scenarios._names import LOCALE_OVERRIDES, _derived, person_locales

    assert all(country_name(code) != code for code in LOCALE_OVERRIDES)
    derived = _derived()
    regions = {loc.partition("_")[2] for loc in person_locales() if len(loc.partition("_")[2]) == 2}
    assert {iso3_from_iso2(r) for r in regions} - {None} == set(derived)
    assert "fr_FR" in derived["FRA"] and "tr_TR" in derived["TUR"]
    assert set(DISPLAY_NAMES) <= {c.iso3 for c in countries()}


def test_role_play_and_survey_prompts_of_one_run_name_the_country_identically(tmp_path: Path) -> None:
    from clca.roleplay import agent_messages, culture_profile, view
    from clca.run_config import RunConfig
    from clca.scenarios import load_seeds
    from clca.wvs import default_questionnaire
    from clca.wvs._answer import build_messages
    from clca.wvs._personas import Persona

    cfg = RunConfig(run_dir=tmp_path / "run", cultures=["Türkiye"])
    culture = resolve_culture(cfg.cultures[0])  # as the scenarios stage does
    scenario = load_seeds()[0].model_copy(update={"culture": culture.code})
    sv = view(scenario, culture)
    roleplay = "\n".join(m["content"] for m in agent_messages(sv, 0, [], culture_profile(culture)))
    persona = Persona(id="p1", country=resolve_country(cfg.eval.cultures[0]))  # as the eval stage does
    item = default_questionnaire().items[0]
    survey = "\n".join(m["content"] for m in build_messages("cultural", persona, item, "base", 0))
    assert "Turkey" in roleplay and "Turkey" in survey
    assert "Türkiye" not in roleplay and "Türkiye" not in survey


def test_names_are_bounded_and_matching_is_quick() -> None:
    long = "a" * (MAX_NAME + 1)
    with pytest.raises(ConfigError) as e:
        resolve_country(long)
    assert "at most 200" in e.value.one_line() and "\n" not in e.value.one_line()
    with pytest.raises(UnknownCultureError, match="culture name too long"):
        get_culture(long)
    t0 = time.perf_counter()
    for filler in ("republic of " * 16, "china " * 33, "(" * MAX_NAME, "t" + "u" * 199):
        match_country(filler[:MAX_NAME])
    assert time.perf_counter() - t0 < 2.0
    assert match_country("") is None and match_country("Atlantis") is None


# -- one owner: nothing else reads a country table or matches country names --------------------------------------
_TABLE_READERS = {"country_converter", "pycountry"}


def country_table_violations(root: Path, package: str, owner: str) -> list[str]:
    """Modules other than `owner` that import a country library or name country_converter's table file."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join([package, *path.relative_to(root).with_suffix("").parts]).removesuffix(".__init__")
        if module == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "country_data.tsv" in node.value:
                names = ["country_converter"]
            if any(n.split(".")[0] in _TABLE_READERS for n in names):
                out.append(f"{module}:{node.lineno}")
    return out


def test_only_the_resolver_reads_country_tables(tmp_path: Path) -> None:
    assert country_table_violations(SRC, "clca", "clca.countries") == []
    pkg = tmp_path / "pkg"
    (pkg / "wvs").mkdir(parents=True)
    (pkg / "countries.py").write_text("import pycountry\n")
    (pkg / "wvs" / "_countries.py").write_text("def f():\n    import country_converter as coco\n")
    (pkg / "wvs" / "_table.py").write_text("PATH = 'country_data.tsv'\n")
    assert country_table_violations(pkg, "pkg", "pkg.countries") == ["pkg.wvs._countries:2", "pkg.wvs._table:1"]
