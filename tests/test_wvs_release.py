"""WVS-7 release formats (.csv numeric, .sav, .dta, .rds), personas from the official columns, weighted persona
sampling and `clca wvs aggregate` -> `clca eval --reference`.

The official-format files are written at test time from the shared labelled export (cultural-trends) with the
WVS-7 codebook of ../shared/data/worldvaluesbench (label -> official numeric code), using pyreadstat / pyreadr:
the same libraries users' files are read with. Expectations come from the labelled export read independently.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clca.cli.main import app
from clca.errors import DataError
from clca.store import RunStore
from clca.wvs import (
    default_questionnaire,
    distributions,
    iter_respondents,
    load_reference,
    load_survey,
    personas_from_survey,
)

pytestmark = pytest.mark.shared
Q = default_questionnaire()
DEMO = ["N_REGION_ISO", "H_URBRURAL", "Q260", "Q262", "Q275", "Q279", "Q287", "Q288", "Q289"]
FILES = {"USA": "us_wvs_wave7_v7_n303.csv", "EGY": "eg_wvs_wave7_v7_n303.csv"}


@cache
def _codebook(shared: Path) -> dict:
    return json.loads((shared / "worldvaluesbench" / "codebook.json").read_text())


@cache
def _official(shared: Path):  # noqa: ANN202 - (DataFrame, value labels) in the official numeric coding
    """Both labelled exports recoded to official numeric codes (unknown label -> -5, missing), one data frame."""
    import pandas as pd

    cb = _codebook(shared)
    frames = []
    for fname in FILES.values():
        with (shared / "cultural-trends" / fname).open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
        header = [h.split(" ", 1)[0] for h in rows[0]]
        data: dict[str, list] = {}
        for col in ["B_COUNTRY_ALPHA", "W_WEIGHT", *(i.id for i in Q if i.id in header), *DEMO]:
            vals = [r[header.index(col)] for r in rows[1:]]
            if col == "B_COUNTRY_ALPHA":
                data[col] = vals
            elif col == "W_WEIGHT":
                data[col] = [1.0 if v.lower().startswith("no weight") else float(v) for v in vals]
            elif col == "Q262":
                data[col] = [float(v) if v.isdigit() else -5.0 for v in vals]
            else:
                inv = {_key(lab): float(code) for code, lab in cb[col]["choices"].items()}
                data[col] = [inv.get(_key(v), -5.0) for v in vals]
        frames.append(pd.DataFrame(data))
    df = pd.concat(frames, ignore_index=True)
    labels = {c: {float(k): v for k, v in cb[c]["choices"].items()} for c in DEMO if c != "Q262"}
    return df, labels


def _key(label: str) -> str:
    """Word order aside ("Agree strongly" in the export, "Strongly agree" in the codebook)."""
    return " ".join(sorted(label.lower().split()))


def _write(shared: Path, tmp: Path, fmt: str) -> Path:
    import pyreadr
    import pyreadstat

    df, labels = _official(shared)
    out = tmp / f"wvs7.{fmt}"
    if fmt == "csv":
        df.to_csv(out, index=False)
    elif fmt == "sav":
        pyreadstat.write_sav(df, out, variable_value_labels=labels)
    elif fmt == "dta":
        pyreadstat.write_dta(df, out, variable_value_labels={k: {int(c): v for c, v in t.items()} for k, t in
                                                             labels.items()})  # fmt: skip
    elif fmt == "rds":  # what R users hold after haven::as_factor on the region: a factor with the labels
        import pandas as pd

        rdf = df.copy()
        rdf["N_REGION_ISO"] = pd.Categorical([labels["N_REGION_ISO"].get(v) for v in df["N_REGION_ISO"]])
        pyreadr.write_rds(out, rdf)
    return out


@pytest.fixture(scope="module")
def labelled(shared_data: Path):  # noqa: ANN201
    from clca.wvs import Survey

    s = Survey()
    for fname in FILES.values():
        s.extend(load_survey(shared_data / "cultural-trends" / fname))
    return s


@pytest.mark.parametrize("fmt", ["sav", "dta", "rds"])
def test_release_formats_round_trip(shared_data: Path, tmp_path: Path, labelled, fmt: str) -> None:  # noqa: ANN001
    """Written with pyreadstat/pyreadr, read back: the same answers, weights and personas as the labelled export."""
    path = _write(shared_data, tmp_path, fmt)
    survey = load_survey(path)
    assert survey.weighted and len(survey.respondents) == len(labelled.respondents) == 606
    df, _ = _official(shared_data)
    compared = 0
    for k, (got, exp) in enumerate(zip(survey.respondents, labelled.respondents, strict=True)):
        assert got.country == exp.country and got.weight == pytest.approx(exp.weight)
        recoded = {i: int(df[i][k]) for i in got.answers.keys() | exp.answers.keys() if df[i][k] >= 0}
        assert {i: got.answers[i] for i in recoded} == recoded == {i: exp.answers[i] for i in recoded}
        assert set(got.answers) == set(recoded)
        compared += len(recoded)
        for field, col in (("region", "N_REGION_ISO"), ("sex", "Q260"), ("age", "Q262"), ("education", "Q275"),
                           ("social_class", "Q287"), ("income", "Q288"), ("settlement", "H_URBRURAL")):  # fmt: skip
            if df[col][k] >= 0:
                assert got.demographics[field] == exp.demographics[field], (fmt, k, field)
        for field, col in (("employment", "Q279"), ("religion", "Q289")):
            if df[col][k] >= 0:
                assert got.demographics[field] == exp.demographics[field], (fmt, k, field)
    assert compared > 0.95 * sum(len(r.answers) for r in labelled.respondents)  # labels the codebook spells alike
    assert distributions(survey)["USA"]["Q6"].shares == pytest.approx(distributions(labelled)["USA"]["Q6"].shares)
    first = survey.respondents[0].demographics
    assert first["region"] == "Illinois" and "income" in first and "religion" in first


def test_numeric_csv_regions_need_labels(shared_data: Path, tmp_path: Path) -> None:
    csv_path = _write(shared_data, tmp_path, "csv")
    bare = load_survey(csv_path)
    assert "region" not in bare.respondents[0].demographics and bare.unlabelled_regions == 606
    assert bare.respondents[0].demographics["sex"] == "male"
    sav = _write(shared_data, tmp_path, "sav")
    for labels in (sav, shared_data / "worldvaluesbench" / "codebook.json"):
        s = load_survey(csv_path, labels=labels)
        assert s.unlabelled_regions == 0
        regions = Counter(r.demographics.get("region") for r in s.respondents if r.country == "EGY")
        assert regions["Cairo"] > 0 and None not in regions


def test_binary_formats_stream_in_chunks(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyreadstat reads only the needed columns, in chunks; a bad weight names the row."""
    import pyreadstat

    from clca.wvs import _release

    monkeypatch.setattr(_release, "CHUNK_ROWS", 100)
    path = _write(shared_data, tmp_path, "sav")
    seen: list[tuple[int, int]] = []
    real = pyreadstat.read_file_in_chunks

    def spy(fn, p, chunksize, usecols):  # noqa: ANN001, ANN202
        for df, meta in real(fn, p, chunksize=chunksize, usecols=usecols):
            seen.append(df.shape)
            yield df, meta

    monkeypatch.setattr(pyreadstat, "read_file_in_chunks", spy)
    stream = iter_respondents(path)
    assert sum(1 for _ in stream) == 606
    assert len(seen) == 7 and max(r for r, _ in seen) == 100
    assert all(c < 60 for _, c in seen)  # the items and persona columns only
    df, labels = _official(shared_data)
    bad = df.copy()
    bad.loc[4, "W_WEIGHT"] = float("inf")
    pyreadstat.write_sav(bad, tmp_path / "bad.sav", variable_value_labels=labels)
    with pytest.raises(DataError, match=r"bad\.sav: row 5: column W_WEIGHT: not a finite number"):
        load_survey(tmp_path / "bad.sav", strict=True)
    lenient = load_survey(tmp_path / "bad.sav")  # the row left out and reported, the rest kept
    assert lenient.problems == ["row 5: column W_WEIGHT: not a finite number: inf"]
    assert len(lenient.respondents) == len(df) - 1


def test_nan_weight_in_csv_is_rejected_with_its_line(shared_data: Path, tmp_path: Path) -> None:
    src = _write(shared_data, tmp_path, "csv")
    lines = src.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("W_WEIGHT")] = "nan"
    lines[3] = ",".join(cells)
    (tmp_path / "nanw.csv").write_text("\n".join(lines[:6]) + "\n")
    with pytest.raises(DataError, match=r"nanw\.csv: line 4: column W_WEIGHT: not a finite number"):
        load_survey(tmp_path / "nanw.csv", strict=True)
    assert [r.line for r in load_survey(tmp_path / "nanw.csv").respondents] == [2, 3, 5, 6]


# --------------------------------------------------------------------------------------------- weighted personas
def _persona_shares(personas, item) -> list[float]:  # noqa: ANN001
    counts = Counter(p.answers[item.id] for p in personas if item.id in p.answers)
    total = sum(counts.values())
    return [counts[c] / total for c in item.codes]


def test_weighted_personas_converge_to_weighted_shares(labelled) -> None:  # noqa: ANN001
    """The answers of weighted personas approach the weighted survey shares as n grows; uniform ones do not."""
    dist = distributions(labelled)["USA"]
    items = [i for i in Q if i.id in dist]

    def err(personas) -> float:  # noqa: ANN001
        return max(max(abs(a - b) for a, b in zip(_persona_shares(personas, i), dist[i.id].shares, strict=True))
                   for i in items)  # fmt: skip

    errors = {n: err(personas_from_survey(labelled, "USA", n, seed=1)) for n in (20, 200, 3000)}
    assert errors[3000] < errors[20] and errors[3000] < 0.01, errors
    uniform = personas_from_survey(labelled, "USA", 303, seed=1, sampling="uniform")
    assert len({p.id for p in uniform}) == 303 and err(uniform) > 0.03  # unweighted = another population
    weighted = personas_from_survey(labelled, "USA", 3000, seed=1)
    assert len({p.id for p in weighted}) == 3000  # repeated respondents get their own ids
    assert personas_from_survey(labelled, "USA", 50, seed=1) == personas_from_survey(labelled, "USA", 50, seed=1)


def test_persona_details_carry_the_official_columns(shared_data: Path, tmp_path: Path) -> None:
    survey = load_survey(_write(shared_data, tmp_path, "sav"))
    (p,) = personas_from_survey(survey, "EGY", 1, seed=3)
    labels = dict(p.details())
    assert {"Region", "Sex", "Age", "Education level", "Social class (own view)", "Household income"} <= set(labels)


# --------------------------------------------------------------------------------------------- aggregate -> eval
def test_aggregate_every_country_then_eval(shared_data: Path, tmp_path: Path) -> None:
    path = _write(shared_data, tmp_path, "dta")
    out = tmp_path / "ref.json"
    res = CliRunner().invoke(app, ["wvs", "aggregate", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "2 countries" in res.output
    table = load_reference(out)
    assert set(table.countries) == {"EGY", "USA"}
    direct = distributions(load_survey(path))
    for iso in ("EGY", "USA"):
        assert table.countries[iso].items["Q1"].shares == pytest.approx(direct[iso]["Q1"].shares)
        assert "region" in table.countries[iso].marginals
    run = tmp_path / "run"
    args = ["eval", "--model", "mock", "--culture", "Egypt", "--compare", "USA", "--reference", str(out),
            "--personas", "2", "--item", "Q1", "--item", "Q6", "--run-dir", str(run), "--quiet",
            "--bootstrap", "0"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    with RunStore(run) as store:
        assert store.count("survey_answer") == 2 * 2 * 2
        personas = {r.data["persona"] for r in store.iter("survey_answer")}
    assert personas == {"m0000", "m0001"}


def test_reference_with_nan_or_negative_share_is_refused(tmp_path: Path) -> None:
    table = load_reference()
    good = tmp_path / "ref.json"
    table.save(good)
    text = good.read_text()
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if '"shares"' in line)
    for bad_value, msg in (("NaN", "NaN is not a share"), ("-0.25", "negative share -0.25")):
        j = k + 1  # the first share sits on the line after "shares": [
        broken = lines[:]
        broken[j] = bad_value + ("," if broken[j].rstrip().endswith(",") else "")
        (tmp_path / "bad.json").write_text("\n".join(broken) + "\n")
        with pytest.raises(DataError, match=rf"bad\.json: line {j + 1 if bad_value == 'NaN' else k + 1}: .*{msg}"):
            load_reference(tmp_path / "bad.json")


@pytest.mark.parametrize("suffix", [".sav", ".dta", ".rds"])
def test_unreadable_binary_file_is_a_one_line_error(tmp_path: Path, suffix: str) -> None:
    from clca.cli.main import main

    bad = tmp_path / f"wvs7{suffix}"
    bad.write_bytes(b"not a data file\n")
    with pytest.raises(SystemExit) as e:
        main(["wvs", "aggregate", str(bad), "--out", str(tmp_path / "ref.json"), "--quiet"])
    assert e.value.code == 2 and not (tmp_path / "ref.json").exists()
    with pytest.raises(DataError, match=rf"wvs7\{suffix}: (cannot read|not a readable)"):
        load_survey(bad)


def test_survey_keeps_only_the_evaluated_countries(shared_data: Path, tmp_path: Path) -> None:
    """`--survey` on a many-country file: shares for every country, respondents only for the cultures asked."""
    from clca.wvs import survey_reference

    path = _write(shared_data, tmp_path, "sav")
    survey, table = survey_reference([path], keep={"EGY"})
    assert survey.countries == ["EGY"] and len(survey.respondents) == 303
    assert set(table.countries) == {"EGY", "USA"}
    full = distributions(load_survey(path))
    assert table.countries["USA"].items["Q6"].shares == pytest.approx(full["USA"]["Q6"].shares)
