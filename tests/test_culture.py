"""Country profiles: lookup, verbalisation thresholds, shipped figures, custom profiles, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from clca.culture import (
    Culture,
    HofstedeScores,
    IWPosition,
    UnknownCultureError,
    get_culture,
    hofstede_phrase,
    iw_phrase,
    list_cultures,
    load_profile,
    resolve_culture,
)
from clca.errors import ClcaError, DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("query", "iso3"),
    [
        ("Japan", "JPN"),
        ("japan", "JPN"),
        ("JP", "JPN"),
        ("jpn", "JPN"),
        ("UK", "GBR"),
        ("Britain", "GBR"),
        ("Great Britain", "GBR"),
        ("england", "GBR"),
        ("United Kingdom", "GBR"),
        ("USA", "USA"),
        ("US", "USA"),
        ("America", "USA"),
        ("united states", "USA"),
        ("Korea", "KOR"),
        ("South Korea", "KOR"),
        ("Czechia", "CZE"),
        ("Czech Republic", "CZE"),
        ("China", "CHN"),
        ("  germany ", "DEU"),
        ("DE", "DEU"),
        ("Mexico", "MEX"),
        ("Hong Kong SAR", "HKG"),
    ],
)
def test_lookup_by_name_code_alias(query: str, iso3: str) -> None:
    assert get_culture(query).iso3 == iso3


def test_every_name_and_alias_resolves_to_its_own_culture() -> None:
    cultures = list_cultures()
    assert len(cultures) >= 110
    for c in cultures:
        for name in (c.id, c.name, c.iso2, c.iso3, *c.aliases):
            if name:
                assert get_culture(name).id == c.id, f"{name!r} resolves to {get_culture(name).id}, not {c.id}"


def test_unknown_culture_is_one_line_error_with_close_matches() -> None:
    with pytest.raises(UnknownCultureError) as ei:
        get_culture("Japna")
    msg = ei.value.one_line()
    assert isinstance(ei.value, ClcaError)
    assert "\n" not in str(ei.value)
    assert "Japna" in msg and "Japan" in msg


def test_unknown_culture_without_close_match() -> None:
    with pytest.raises(UnknownCultureError, match="unknown culture 'Qwxyzzz'"):
        get_culture("Qwxyzzz")


@pytest.mark.parametrize(
    ("score", "phrase"),
    [
        (0, "highly egalitarian"),
        (29.9, "highly egalitarian"),
        (30, "moderately egalitarian"),
        (44.9, "moderately egalitarian"),
        (45, "balanced between hierarchy and equality"),
        (55, "balanced between hierarchy and equality"),
        (55.1, "moderately hierarchical"),
        (70, "moderately hierarchical"),
        (70.1, "highly hierarchical"),
        (104, "highly hierarchical"),
    ],
)
def test_hofstede_thresholds_pdi(score: float, phrase: str) -> None:
    assert hofstede_phrase("pdi", score) == phrase


@pytest.mark.parametrize(
    ("dim", "score", "phrase"),
    [
        ("idv", 20, "highly collective"),
        ("idv", 43, "moderately collective"),
        ("idv", 91, "highly individualistic"),
        ("mas", 10, "highly caring"),
        ("mas", 66, "moderately competitive"),
        ("uai", 30, "moderately tolerant of uncertainty"),
        ("uai", 92, "highly uncertainty-avoiding"),
        ("lto", 87, "highly pragmatic"),
        ("lto", 26, "highly normative"),
        ("ivr", 24, "highly restrained"),
        ("ivr", 68, "moderately indulgent"),
    ],
)
def test_hofstede_phrases_per_dimension(dim: str, score: float, phrase: str) -> None:
    assert hofstede_phrase(dim, score) == phrase  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "survival", "secular"),
    [
        (-2.0, "strong survival values", "strongly traditional"),
        (-1.0, "strong survival values", "strongly traditional"),
        (-0.99, "moderate survival values", "moderately traditional"),
        (-0.5, "moderate survival values", "moderately traditional"),
        (-0.49, "little survival values", "slightly traditional"),
        (-0.01, "little survival values", "slightly traditional"),
        (0.0, "little self-expression values", "slightly secular"),
        (0.49, "little self-expression values", "slightly secular"),
        (0.5, "moderate self-expression values", "moderately secular"),
        (0.99, "moderate self-expression values", "moderately secular"),
        (1.0, "strong self-expression values", "strongly secular"),
        (3.1, "strong self-expression values", "strongly secular"),
    ],
)
def test_iw_thresholds(value: float, survival: str, secular: str) -> None:
    assert iw_phrase("survival_self_expression", value) == survival
    assert iw_phrase("traditional_secular", value) == secular


def test_china_matches_the_papers_example_where_the_data_allow() -> None:
    china = get_culture("China")
    h = china.hofstede_phrases()
    assert h[0] == "highly hierarchical"  # paper: highly hierarchical
    assert h[4] == "highly pragmatic"  # paper: highly pragmatic
    assert h[5] == "highly restrained"  # paper: highly restrained
    # paper: "moderately collective"; the 2015 table has idv 20 (the paper's phrase fits a score of 30-44)
    assert h[1] == "highly collective"
    assert china.iw_phrases() == ["little survival values", "moderately secular"]  # exactly the paper's
    text = china.describe()
    assert "highly hierarchical" in text and "little survival values, moderately secular" in text


def test_missing_dimensions_are_left_out_not_invented() -> None:
    zaf = get_culture("South Africa")  # own lto/ivr only; its UN sub-region (Southern Africa) has no Hofstede row
    assert zaf.hofstede is not None and zaf.hofstede.pdi is None and zaf.hofstede.idv is None
    assert zaf.hofstede.lto is not None and zaf.hofstede_region is None and zaf.hofstede_source() == "own (partial)"
    text = zaf.describe()
    for word in ("hierarch", "egalitarian", "collective", "individualistic", "competitive", "caring", "uncertainty"):
        assert word not in text
    assert len(zaf.hofstede_phrases()) == 2
    ni = get_culture("Northern Ireland")
    assert ni.hofstede is None and "Hofstede" not in ni.describe() and "Inglehart-Welzel" in ni.describe()


def test_culture_without_figures_says_so() -> None:
    c = Culture(id="x", name="Nowhere")
    assert c.describe() == "No cultural figures are known for Nowhere."


def _hofstede_rows(shared: Path) -> list[dict[str, str]]:
    path = shared / "culturepark" / "6-dimensions-for-website-2015-08-16.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=";"))


@pytest.mark.shared
def test_shipped_figures_equal_the_public_tables(shared_data: Path) -> None:
    by_alias = {}
    for c in list_cultures():
        for n in (c.name, *c.aliases):
            by_alias[n] = c
    rows = _hofstede_rows(shared_data)
    assert len(rows) == 111
    for row in rows:
        c = by_alias[row["country"].strip()]
        assert c.hofstede is not None
        for ours, theirs in (
            ("pdi", "pdi"),
            ("idv", "idv"),
            ("mas", "mas"),
            ("uai", "uai"),
            ("lto", "ltowvs"),
            ("ivr", "ivr"),
        ):
            cell = row[theirs].strip()
            value = getattr(c.hofstede, ours)
            if cell == "#NULL!":
                assert value is None, (c.name, ours)
            else:
                assert value == float(cell), (c.name, ours)
    with (shared_data / "ethogpt-db" / "indicesZ.csv").open(newline="", encoding="utf-8") as f:
        iw_rows = [r for r in csv.DictReader(f) if r["Traditional_vs_Secular"].strip()]
    assert len(iw_rows) == 116
    for r in iw_rows:
        c = by_alias[r["Country"].strip()]
        assert c.iw is not None
        assert c.iw.traditional_secular == float(r["Traditional_vs_Secular"])
        assert c.iw.survival_self_expression == float(r["Survival_vs_SelfExpression"])


@pytest.mark.shared
def test_generator_script_reproduces_the_shipped_file(shared_data: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_cultures
    finally:
        sys.path.pop(0)
    built = build_cultures.build(shared_data)
    shipped = json.loads((ROOT / "src" / "clca" / "data" / "cultures.json").read_text(encoding="utf-8"))
    assert built == shipped
    assert set(shipped["sources"]) == {"hofstede", "iw"}
    assert all("url" in s and "dataset" in s for s in shipped["sources"].values())


def test_shipped_file_holds_figures_and_identity_only() -> None:
    shipped = json.loads((ROOT / "src" / "clca" / "data" / "cultures.json").read_text(encoding="utf-8"))
    for c in shipped["cultures"]:
        assert set(c) == {"id", "name", "iso2", "iso3", "aliases", "hofstede", "iw"}
        Culture.model_validate(c)


# ---- user profiles -----------------------------------------------------------------------------


def test_profile_with_partial_scores_and_description(tmp_path: Path) -> None:
    p = tmp_path / "bavaria.yaml"
    p.write_text(
        "name: Bavaria\nhofstede:\n  pdi: 30\n  ivr: 80\ndescription: Beer gardens and Sunday church.\n",
        encoding="utf-8",
    )
    c = load_profile(p)
    assert c.code == "bavaria" and c.iso3 is None
    assert c.hofstede == HofstedeScores(pdi=30, ivr=80)
    text = c.describe()
    assert text == (
        "On Hofstede's cultural dimensions, Bavaria is moderately egalitarian, highly indulgent. "
        "Beer gardens and Sunday church."
    )
    assert resolve_culture(str(p)).code == "bavaria"


def test_profile_json_with_map_position_and_code(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text(
        json.dumps({"name": "Diaspora X", "code": "dx", "iw": {"traditional_secular": -0.7}}), encoding="utf-8"
    )
    c = load_profile(p)
    assert c.code == "dx"
    assert c.iw == IWPosition(traditional_secular=-0.7)
    assert c.describe() == "Diaspora X's position on the Inglehart-Welzel cultural map: moderately traditional."


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("hofstede:\n  pdi: 30\n", "field 'name'"),
        ("name: A\nhofstede:\n  pdi: 300\n", "field 'hofstede.pdi'"),
        ("name: A\nhofstede:\n  power: 30\n", "field 'hofstede.power'"),
        ("name: A\ncolour: blue\n", "field 'colour'"),
        ("name: A\niw:\n  traditional_secular: abc\n", "field 'iw.traditional_secular'"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_profile_is_one_line_error_naming_file_and_field(tmp_path: Path, text: str, expect: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_profile(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(p) in msg and expect in msg


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_profile(tmp_path / "nope.yaml")


# ---- CLI ---------------------------------------------------------------------------------------


def _clca(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from clca.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(list(args))
    out = capsys.readouterr()
    return int(ei.value.code or 0), out.out, out.err


def test_cli_culture_show_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _clca(capsys, "culture", "show", "Japan")
    assert code == 0, err
    assert "pdi=54" in out and "JPN" in out
    assert get_culture("Japan").describe() in out
    code, out, err = _clca(capsys, "culture", "show", "japn")
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: unknown culture") and "Japan" in err
    code, out, err = _clca(capsys, "culture", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(list_cultures()) + 2  # header, the table, the count of sources
    assert any(line.startswith("JPN  Japan") for line in lines)
