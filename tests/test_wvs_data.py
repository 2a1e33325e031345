"""Questionnaire, survey loaders and distributions on the real files in ../shared/data.

Expectations are computed independently from the raw files with the csv module.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest

from clca.errors import DataError
from clca.wvs import (
    default_questionnaire,
    distributions,
    load_global_opinions,
    load_opinion_questions,
    load_questionnaire,
    load_reference,
    load_survey,
    marginals,
)

pytestmark = pytest.mark.shared
Q = default_questionnaire()


@cache
def _load(path: Path):  # noqa: ANN202 - each real file is parsed once per session
    return load_survey(path)


# --------------------------------------------------------------------------------------------- questionnaire
def test_bundled_questionnaire_has_the_44_items() -> None:
    assert len(Q) == 44
    assert Q.ids == [f"Q{i}" for i in range(1, 46) if i != 42]
    for it in Q:
        assert it.text and it.theme and it.paraphrase and it.paraphrase != it.text
        assert it.scale_length == len(it.codes) >= 2


def test_codes_agree_with_the_wvs_codebook(shared_data: Path) -> None:
    cb = json.loads((shared_data / "worldvaluesbench" / "codebook.json").read_text())
    for it in Q:
        codes = sorted(int(c) for c in cb[it.id]["choices"] if int(c) >= 0)
        assert codes == it.codes, it.id


def test_wording_is_our_own(shared_data: Path) -> None:
    """No question text of the bundled questionnaire equals a question of the public item files."""
    theirs = set()
    for f in (shared_data / "global-opinion-alignment" / "questions").glob("WV7_English.jsonl"):
        theirs |= {json.loads(line)["question"].strip().lower() for line in f.read_text().splitlines() if line}
    for it in Q:
        assert it.text.lower() not in theirs and (it.paraphrase or "").lower() not in theirs


def test_questionnaire_validation_names_file_and_item(tmp_path: Path) -> None:
    f = tmp_path / "q.yaml"
    ok = "  - {id: X1, theme: t, text: 'A?', options: {1: a, 2: b}}\n"
    f.write_text("items:\n" + ok + "  - {id: X2, theme: t, text: 'B?'}\n")
    with pytest.raises(DataError, match=r"q\.yaml: item X2: no options"):
        load_questionnaire(f)
    f.write_text("items:\n" + ok + ok)
    with pytest.raises(DataError, match="X1: duplicate id"):
        load_questionnaire(f)
    f.write_text("items:\n  - {id: X1, theme: t, text: 'A?', options: {1: a, -1: b}}\n")
    with pytest.raises(DataError, match="negative"):
        load_questionnaire(f)
    f.write_text(
        "language: de\nitems:\n"
        "  - {id: Q1, theme: t, text: 'Wie wichtig?', kind: categorical, options: {1: ja, 2: nein}}\n"
    )
    q = load_questionnaire(f)
    assert q.language == "de" and q.get("Q1").kind == "categorical" and Q.merged(q).get("Q1").text == "Wie wichtig?"


# --------------------------------------------------------------------------------------------- numeric CSV
def _raw_numeric(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_arabic_csv_counts_and_shares(shared_data: Path) -> None:
    path = shared_data / "culturepark" / "Arabic.csv"
    header, rows = _raw_numeric(path)
    data = [r for r in rows if r[1].strip()]  # drop summary rows (no ISO code)
    assert len(rows) - len(data) == 3
    survey = _load(path)
    assert Counter(r.country for r in survey.respondents) == Counter(r[1] for r in data)
    assert survey.dropped_rows == 3 and not survey.weighted
    dist = distributions(survey)
    assert sorted(dist) == ["EGY", "IRQ", "JOR", "LBN", "LBY", "MAR", "TUN"]
    for country in ("EGY", "TUN"):
        for iid in ("Q1", "Q33", "Q45"):
            k = header.index(iid)
            vals = [int(r[k]) for r in data if r[1] == country]
            valid = [v for v in vals if v >= 0]
            d = dist[country][iid]
            assert d.n == len(valid) and d.n < len(vals) or d.n == len(vals) == len(valid)
            for code in d.codes:
                assert d.share(code) == pytest.approx(valid.count(code) / len(valid))
            assert sum(d.shares) == pytest.approx(1.0)


def test_item_never_asked_has_no_distribution(shared_data: Path) -> None:
    path = shared_data / "culturepark" / "Arabic.csv"
    header, rows = _raw_numeric(path)
    dist = distributions(_load(path))
    never = []
    for country in dist:
        for iid in Q.ids:
            if iid not in header:
                assert iid not in dist[country]  # no column at all (Q15, Q21)
                continue
            k = header.index(iid)
            if all(int(r[k]) < 0 for r in rows if r[1] == country):
                never.append((country, iid))
                assert iid not in dist[country]
    assert never, "expected at least one item not asked in some country"
    assert ("EGY", "Q36") in never


@pytest.mark.parametrize(
    "name",
    ["Argentina", "Bangladesh", "Brazil", "China", "Germany", "Greece", "Iraq", "Jordan", "Mexico", "South Korea",
     "Turkey", "United States"],
)  # fmt: skip
def test_culturellm_files(shared_data: Path, name: str) -> None:
    path = shared_data / "culturellm" / f"{name}.csv"
    header, rows = _raw_numeric(path)
    data = [r for r in rows if r[header.index("B_COUNTRY_ALPHA")].strip()]
    survey = _load(path)
    assert len(survey.respondents) == len(data)
    assert survey.dropped_rows == len(rows) - len(data) >= 1
    (country,) = survey.countries
    dist = distributions(survey)[country]
    assert set(dist) <= {f"Q{i}" for i in range(27, 42)}
    for iid in ("Q27", "Q36", "Q41"):
        k = header.index(iid)
        valid = [int(r[k]) for r in data if int(r[k]) >= 0]
        if not valid:
            assert iid not in dist
            continue
        assert dist[iid].n == len(valid)
        assert dist[iid].share(1) == pytest.approx(valid.count(1) / len(valid))


# --------------------------------------------------------------------------------------------- labelled export
@pytest.mark.parametrize("fname,iso", [("us_wvs_wave7_v7_n303.csv", "USA"), ("eg_wvs_wave7_v7_n303.csv", "EGY")])
def test_labelled_export_weights_and_labels(shared_data: Path, fname: str, iso: str) -> None:
    path = shared_data / "cultural-trends" / fname
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    header = [h.split(" ", 1)[0] for h in rows[0]]
    wk = header.index("W_WEIGHT")
    survey = _load(path)
    assert survey.countries == [iso] and len(survey.respondents) == len(rows) - 1 == 303
    dist = distributions(survey)[iso]
    for iid in ("Q1", "Q4", "Q29", "Q45"):
        item = Q.get(iid)
        k = header.index(iid)
        mass: dict[int, float] = defaultdict(float)
        n = 0
        for r in rows[1:]:
            code = item.label_to_code(r[k])
            if code is None:
                continue
            w = 1.0 if r[wk].lower().startswith("no weight") else float(r[wk])
            mass[code] += w
            n += 1
        total = sum(mass.values())
        assert dist[iid].n == n
        for code in item.codes:
            assert dist[iid].share(code) == pytest.approx(mass[code] / total)
    # columns missing from the export (items not asked) give no distribution
    for iid in Q.ids:
        if iid not in header:
            assert iid not in dist


def test_us_weights_change_the_shares(shared_data: Path) -> None:
    survey = _load(shared_data / "cultural-trends" / "us_wvs_wave7_v7_n303.csv")
    assert survey.weighted
    d = distributions(survey)["USA"]["Q6"]
    raw = Counter(r.answers["Q6"] for r in survey.respondents if "Q6" in r.answers)
    assert d.share(1) != pytest.approx(raw[1] / sum(raw.values()), abs=1e-6)


def test_label_mapping() -> None:
    assert Q.get("Q1").label_to_code("Very important") == 1
    assert Q.get("Q1").label_to_code("not at all important") == 4
    assert Q.get("Q39").label_to_code("Neither agree or disagree") == 3
    assert Q.get("Q45").label_to_code("Don't mind") == 2
    assert Q.get("Q45").label_to_code("Banana") is None


def test_marginals_from_labelled_export(shared_data: Path) -> None:
    survey = _load(shared_data / "cultural-trends" / "eg_wvs_wave7_v7_n303.csv")
    m = marginals(survey)["EGY"]
    assert set(m) >= {"sex", "age", "region", "education", "social_class", "marital_status"}
    assert sum(m["sex"].values.values()) == pytest.approx(1.0)
    assert set(m["sex"].values) == {"male", "female"}
    assert m["sex"].n == 303


# --------------------------------------------------------------------------------------------- broken files
def _slice(src: Path, dst: Path, n: int = 5) -> list[str]:
    lines = src.read_text().splitlines()[:n]
    dst.write_text("\n".join(lines) + "\n")
    return lines


def test_broken_files_give_one_line_errors(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "culturepark" / "Arabic.csv"
    lines = _slice(src, tmp_path / "ok.csv")
    (tmp_path / "tabs.csv").write_text("\n".join(line.replace(",", "\t") for line in lines) + "\n")
    with pytest.raises(DataError, match=r"tabs\.csv: line 1: .*single column|delimiter"):
        load_survey(tmp_path / "tabs.csv")
    (tmp_path / "nocountry.csv").write_text(
        "\n".join(",".join(c for k, c in enumerate(line.split(",")) if k not in (0, 1)) for line in lines) + "\n"
    )
    with pytest.raises(DataError, match=r"nocountry\.csv: line 1: no country column"):
        load_survey(tmp_path / "nocountry.csv")
    bad = lines[:]
    cells = bad[3].split(",")
    cells[2] = "often"
    bad[3] = ",".join(cells)
    (tmp_path / "text.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"text\.csv: line 4: column Q1: non-numeric code 'often'") as e:
        load_survey(tmp_path / "text.csv", strict=True)
    assert "\n" not in str(e.value)
    cells[2] = "9"
    bad[3] = ",".join(cells)
    (tmp_path / "range.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"line 4: column Q1: code 9 is not an option of Q1"):
        load_survey(tmp_path / "range.csv", strict=True)
    assert len(load_survey(tmp_path / "ok.csv").respondents) == 4


def test_labelled_unknown_label_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "cultural-trends" / "eg_wvs_wave7_v7_n303.csv"
    lines = src.read_text().splitlines()[:3]
    header = lines[0].split(";")
    k = next(i for i, h in enumerate(header) if h.startswith("Q1 "))
    cells = lines[2].split(";")
    cells[k] = "Extremely vital"
    lines[2] = ";".join(cells)
    (tmp_path / "lab.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"lab\.csv: line 3: column 'Q1 .*unknown answer label 'Extremely vital'"):
        load_survey(tmp_path / "lab.csv", strict=True)


# --------------------------------------------------------------------------------------------- GlobalOpinionQA
def test_opinion_question_files_agree_with_our_codes(shared_data: Path) -> None:
    files = sorted((shared_data / "global-opinion-alignment" / "questions").glob("*.jsonl"))
    assert len(files) == 11
    for f in files:
        qs = {x.id: x for x in load_opinion_questions(f)}
        common = [i for i in Q if i.id in qs]
        assert common, f.name
        for it in common:
            assert sorted(qs[it.id].keys) == it.codes, (f.name, it.id)
    shuffled = {x.id: x for x in load_opinion_questions(files[-1])}
    assert any(x.keys != sorted(x.keys) for x in shuffled.values())


def test_global_opinions_with_shares(shared_data: Path, tmp_path: Path) -> None:
    """A GlobalOpinionQA-style CSV (options as text, selections as a defaultdict repr) built from real items."""
    src = shared_data / "global-opinion-alignment" / "questions" / "WV7_shuffle.jsonl"
    recs = [json.loads(line) for line in src.read_text().splitlines()[:3]]
    out = tmp_path / "goqa.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "question", "options", "choice_keys", "selections", "source"])
        for r in recs:
            k = len(r["choices"])
            shares = {"Egypt": [2.0] + [1.0] * (k - 1), "United States": [1.0 / k] * k}
            w.writerow([r["id"], r["question"], repr(r["choices"]), json.dumps(r["choice_keys"]),
                        f"defaultdict(<class 'list'>, {shares!r})", "WVS"])  # fmt: skip
    table = load_global_opinions(out)
    assert set(table.countries) == {"EGY", "USA"}
    r0 = recs[0]
    d = table.countries["EGY"].items[r0["id"]]
    first_code = int(r0["choice_keys"][0])
    assert d.codes == sorted(int(c) for c in r0["choice_keys"])
    assert d.share(first_code) == pytest.approx(2.0 / (len(d.codes) + 1))
    assert sum(d.shares) == pytest.approx(1.0)
    bad = out.read_text().replace("[1.0, 1.0, 1.0]", "[1.0]", 1)
    (tmp_path / "bad.csv").write_text(bad)
    if bad != out.read_text():
        with pytest.raises(DataError, match=r"bad\.csv: line \d+: country"):
            load_global_opinions(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="no 'selections'"):
        load_global_opinions(src)


# --------------------------------------------------------------------------------------------- reference table
def test_bundled_reference_table() -> None:
    ref = load_reference()
    assert {"EGY", "USA", "IRQ", "JOR", "LBN", "LBY", "MAR", "TUN"} <= set(ref.countries)
    for iso, c in ref.countries.items():
        for iid, d in c.items.items():
            assert d.n > 0 and d.source and sum(d.shares) == pytest.approx(1.0), (iso, iid)
    # 44 items + the 9 cultural-map questions; one source per country (tests/test_wvs_reference_sources.py)
    assert len(ref.countries["USA"].items) == 53
    assert "Q36" not in ref.countries["EGY"].items  # not asked in Egypt
    assert ref.countries["EGY"].marginals["sex"].n == 303


def test_aggregate_command_matches_bundled_shares(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clca.cli.main import app

    f = shared_data / "cultural-trends" / "us_wvs_wave7_v7_n303.csv"
    out = tmp_path / "ref.json"
    res = CliRunner().invoke(app, ["wvs", "aggregate", str(f), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = load_reference(out)
    assert table.countries["USA"].items["Q1"].n == 303 and table.countries["USA"].items["Q1"].weighted
    direct = distributions(_load(f))["USA"]["Q6"]
    assert table.countries["USA"].items["Q6"].shares == pytest.approx(direct.shares)
    assert not list(tmp_path.glob(".ref.json*"))  # no temp file left behind
