"""GlobalOpinionQA as a first-class survey: both layouts, skipped entries, share validation with the real line,
Pew country spellings, the "Don't know"/"Refused" rule, and `clca eval --opinions` / the run config.

Files are built at test time from the real WVS-7 question records of ../shared/data/global-opinion-alignment
(questions and options); the shares are made up by the test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clca.cli.main import app
from clca.countries import iso3_from_numeric
from clca.errors import DataError
from clca.store import RunStore
from clca.wvs import load_global_opinions, load_opinion_survey, resolve_country

pytestmark = pytest.mark.shared
# (spelling in the file, ISO alpha-3): Pew's spellings next to the usual ones
COUNTRIES = [("S. Korea", "KOR"), ("Czech Rep.", "CZE"), ("Taiwan ROC", "TWN"), ("Britain", "GBR"), ("Egypt", "EGY")]


def _questions(shared: Path, n: int = 3) -> list[dict]:
    src = shared / "global-opinion-alignment" / "questions" / "WV7_English.jsonl"
    return [json.loads(line) for line in src.read_text().splitlines()[:n]]


def _shares(k: int, seed: int) -> list[float]:
    raw = [float((seed * 7 + j * 3) % 5 + 1) for j in range(k)]
    return [x / sum(raw) for x in raw]


def _mixed_question() -> dict:
    """Options mixing numbers and text, with a "Don't know" option (the test's own wording)."""
    return {"question": "On a scale from 1 to 3, how much do you trust\nyour neighbours?",
            "choices": [1, 2, 3.0, "Don't know/Refused"]}  # fmt: skip


def _entries(shared: Path) -> list[tuple[dict, dict[str, list[float] | None]]]:
    """(question record, country -> shares) with one all-zero and one missing entry, and both spellings of Korea."""
    out = []
    for qn, rec in enumerate([_mixed_question(), *_questions(shared)]):
        k = len(rec["choices"])
        sel: dict[str, list[float] | None] = {name: _shares(k, qn + c) for c, (name, _) in enumerate(COUNTRIES)}
        if qn == 2:
            sel["Egypt"] = [0.0] * k  # all-zero entry: skipped and counted
            sel["S. Korea"] = None  # missing entry: skipped and counted
            sel["South Korea"] = _shares(k, 9)  # the other spelling merges into KOR
        out.append((rec, sel))
    return out


def _wide_csv(shared: Path, path: Path, bad: str | None = None) -> int:
    """The published dataset's layout: question, selections (defaultdict text), options (list text), source; no id.
    `bad` replaces the last question's first Britain share; returns the line that record starts on."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "selections", "options", "source"])
        start = 2
        for n, (rec, sel) in enumerate(_entries(shared)):
            if bad is not None and n == 3:
                sel = {**sel, "Britain": [0.123456789, *sel["Britain"][1:]]}
                bad_line = start
            text = f"defaultdict(<class 'list'>, {sel!r})".replace("0.123456789", str(bad))
            w.writerow([rec["question"], text, repr(rec["choices"]), "WVS"])
            start += 1 + rec["question"].count("\n")
    return bad_line if bad is not None else 0


def _long_jsonl(shared: Path, path: Path) -> None:
    """One row per (country, question) with a `distribution` column; dict form for one question."""
    with path.open("w") as fh:
        for n, (rec, sel) in enumerate(_entries(shared)):
            for country, shares in sel.items():
                dist: object = shares
                if n == 0 and shares is not None:
                    dist = {str(o): s for o, s in zip(rec["choices"], shares, strict=True)}
                fh.write(json.dumps({"country": country, "question": rec["question"], "options": rec["choices"],
                                     "distribution": dist}) + "\n")  # fmt: skip


@pytest.fixture
def files(shared_data: Path, tmp_path: Path) -> dict[str, Path]:
    wide, long = tmp_path / "goqa.csv", tmp_path / "goqa_long.jsonl"
    _wide_csv(shared_data, wide)
    _long_jsonl(shared_data, long)
    return {"wide": wide, "long": long}


def test_both_layouts_give_the_same_survey(files: dict[str, Path], shared_data: Path) -> None:
    wide, long = load_opinion_survey(files["wide"]), load_opinion_survey(files["long"])
    for s in (wide, long):
        assert len(s.questionnaire) == 4
        assert set(s.reference.countries) == {"KOR", "CZE", "TWN", "GBR", "EGY"}  # "S. Korea" merged with KOR
        reasons = sorted(x.reason for x in s.skipped)
        assert reasons == ["all-zero shares", "missing shares"]
        assert "2 entries skipped (1 all-zero shares; 1 missing shares)" in s.summary()
    assert [i.id for i in wide.questionnaire] == [i.id for i in long.questionnaire]
    for iso, c in wide.reference.countries.items():
        assert set(c.items) == set(long.reference.countries[iso].items)
        for iid, d in c.items.items():
            assert d.shares == pytest.approx(long.reference.countries[iso].items[iid].shares)
    entries = _entries(shared_data)
    q1 = wide.questionnaire.items[2]
    assert "EGY" not in {c for c, ref in wide.reference.countries.items() if q1.id in ref.items}
    assert wide.reference.countries["KOR"].items[q1.id].shares == pytest.approx(entries[2][1]["South Korea"])
    mixed = wide.questionnaire.items[0]
    assert list(mixed.options.values()) == ["1", "2", "3", "Don't know/Refused"]
    assert mixed.text.count("\n") == 1


def test_dont_know_rule(files: dict[str, Path], shared_data: Path) -> None:
    keep = load_opinion_survey(files["wide"])
    drop = load_opinion_survey(files["wide"], unsure="drop")
    mixed_keep, mixed_drop = keep.questionnaire.items[0], drop.questionnaire.items[0]
    assert len(mixed_keep.options) == 4 and list(mixed_drop.options.values()) == ["1", "2", "3"]
    raw = _entries(shared_data)[0][1]["Britain"]
    assert drop.reference.countries["GBR"].items[mixed_drop.id].shares == pytest.approx(
        [x / sum(raw[:3]) for x in raw[:3]]
    )
    assert keep.reference.countries["GBR"].items[mixed_keep.id].shares == pytest.approx(raw)
    assert drop.dropped_options == 1 and "options dropped and shares renormalised" in drop.summary()


@pytest.mark.parametrize("bad,msg", [("nan", "not a finite number"), ("inf", "not a finite number"),
                                     ("-0.2", "negative share"), ("True", "boolean share")])  # fmt: skip
def test_bad_shares_reject_the_file_with_the_real_line(shared_data: Path, tmp_path: Path, bad: str, msg: str) -> None:
    path = tmp_path / "bad.csv"
    line = _wide_csv(shared_data, path, bad=bad)
    assert line == 6  # the first record spans lines 2-3 (a quoted newline): the bad one is the fourth record
    with pytest.raises(DataError, match=rf"bad\.csv: line {line}: country 'Britain': .*{msg}") as e:
        load_opinion_survey(path, strict=True)
    assert "\n" not in str(e.value)
    # without --strict: that one entry is left out and reported by its line, the rest of the file loads
    s = load_opinion_survey(path)
    assert [(x.line, x.message.split(":")[0]) for x in s.problems] == [(line, "country 'Britain'")]
    assert msg in s.problems[0].message and f"1 records with problems left out (first: line {line}: " in s.summary()
    strict_free = {c for c, ref in s.reference.countries.items() if ref.items}
    assert "GBR" in strict_free and len(s.questionnaire) == 4  # Britain's other answers and every question stay


def test_bad_shares_in_jsonl_and_json(tmp_path: Path) -> None:
    rows = [{"country": "Egypt", "question": "Q?", "options": ["a", "b"], "distribution": [0.5, 0.5]},
            {"country": "Japan", "question": "Q?", "options": ["a", "b"], "distribution": [0.5, 0.5]}]  # fmt: skip
    for value, msg in (("NaN", "not a finite number"), ("true", "boolean share"), ("-1", "negative share")):
        text = "\n".join(json.dumps(r) for r in rows).replace("[0.5, 0.5]}", f"[0.5, {value}]}}", 2)
        text = text.replace(f"[0.5, {value}]", "[0.5, 0.5]", 1)  # only the second record is bad
        (tmp_path / "b.jsonl").write_text(text + "\n")
        with pytest.raises(DataError, match=rf"b\.jsonl: line 2: country 'Japan': .*{msg}"):
            load_opinion_survey(tmp_path / "b.jsonl", strict=True)
        s = load_opinion_survey(tmp_path / "b.jsonl")
        assert list(s.reference.countries) == ["EGY"] and [x.line for x in s.problems] == [2]
    (tmp_path / "b.json").write_text(json.dumps(rows, indent=2).replace("0.5\n", "NaN\n"))
    with pytest.raises(DataError, match=r"b\.json: line 2: country 'Egypt': .*not a finite number"):
        load_global_opinions(tmp_path / "b.json", strict=True)


def test_country_names_resolve_with_the_library(shared_data: Path) -> None:
    names = json.loads((shared_data / "global-opinion-alignment" / "country.jsonl").read_text())
    checked = 0
    for num, name in names.items():
        iso = iso3_from_numeric(int(num))
        if iso is not None:  # legacy codes (e.g. 736 Sudan before 2011) have no current ISO entry
            assert resolve_country(name) == iso, name
            checked += 1
    assert checked > 165
    for spelling, iso in COUNTRIES:
        assert resolve_country(spelling) == iso


def test_clca_eval_on_opinions_both_layouts(files: dict[str, Path], tmp_path: Path) -> None:
    for layout, path in files.items():
        run = tmp_path / f"run-{layout}"
        args = ["eval", "--model", "mock", "--opinions", str(path), "--culture", "South Korea", "--compare", "Egypt",
                "--style", "cultural", "--run-dir", str(run), "--quiet", "--bootstrap", "0",
                "--unsure", "drop"]  # fmt: skip
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "2 entries skipped (1 all-zero shares; 1 missing shares)" in res.output
        with RunStore(run) as store:
            answers = list(store.iter("survey_answer"))
            # KOR has all 4 questions, EGY 3 (its all-zero entry skipped); one shared prompt per item
            assert len(answers) == 4 + 3
            mixed = [a for a in answers if len(a.data["codes"]) == 3]
            assert len(mixed) == 2  # "Don't know/Refused" dropped from the options shown
            assert store.get("metric", "mock/cultural/KOR/base/kl") is not None


def test_cli_errors_name_file_and_line(files: dict[str, Path], shared_data: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from clca.cli.main import main

    bad = tmp_path / "nan.csv"
    line = _wide_csv(shared_data, bad, bad="nan")
    for args, msg in (
        (["--opinions", str(files["wide"]), "--survey", str(files["wide"])], "cannot be combined with survey"),
        (["--opinions", str(bad), "--strict"], f"nan.csv: line {line}: country 'Britain'"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["eval", "--model", "mock", "--culture", "KOR", "--run-dir", str(tmp_path / "r"), "--quiet", *args])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "r").exists()  # no half-written run
    # without --strict the same file is evaluated, the bad entry reported by its line
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "mock", "--culture", "KOR", "--run-dir", str(tmp_path / "r"), "--quiet",
              "--opinions", str(bad), "--bootstrap", "0"])  # fmt: skip
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"1 records with problems left out (first: line {line}: country 'Britain': share nan" in out


def test_run_config_takes_opinions(files: dict[str, Path], tmp_path: Path) -> None:
    from clca.pipeline import load_run_config

    cfg = yaml.safe_load(Path("configs/demo.yaml").read_text())
    cfg["eval"].update({"opinions": str(files["long"]), "opinion_unsure": "drop", "persona_sampling": "uniform"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ev = load_run_config(tmp_path / "c.yaml").stage_configs()["eval"]
    assert ev.opinions == str(files["long"]) and ev.opinion_unsure == "drop" and ev.persona_sampling == "uniform"
    cfg["eval"]["opinion_unsure"] = "maybe"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception, match="opinion_unsure"):
        load_run_config(tmp_path / "c.yaml")


@pytest.mark.slow
def test_clca_eval_on_opinions_embedded_model(files: dict[str, Path], tmp_path: Path) -> None:
    """The real embedded model answers GlobalOpinionQA questions (own options each) for a Pew-spelled country."""
    run = tmp_path / "run"
    args = ["eval", "--model", "embedded", "--opinions", str(files["wide"]), "--culture", "S. Korea",
            "--style", "cultural", "--run-dir", str(run), "--quiet", "--bootstrap", "0"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "KOR" in res.output and "entries skipped" in res.output and "mode: logprobs" in res.output
    with RunStore(run) as store:
        answers = list(store.iter("survey_answer"))
        assert len(answers) == 4 and store.count("survey_answer", status="failed") == 0
        for a in answers:
            assert sum(a.data["probs"]) == pytest.approx(1.0, abs=1e-6)
        assert store.get("metric", "embedded/cultural/KOR/base/jsd").data["mean"] >= 0
