"""Surveys as they really are (issue 28): GlobalOpinionQA questions that recur with other option lists
(aligned when only a DK/Refused option differs, else separate variants keyed by question and options), and
files with a few bad rows loading the rest with a per-line report unless `strict`; the same policy for WVS
respondent files (unknown codes, negative missing codes, unlabelled values).

GlobalOpinionQA files are built in the published dataset's layout (question, selections as defaultdict text,
options as list text, source) from the real WVS-7 question records of ../shared/data/global-opinion-alignment;
WVS files are the first rows of real release-format files in ../shared/data. Shares and bad cells are the
test's own."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clca.errors import DataError
from clca.wvs import load_opinion_survey, load_survey

pytestmark = pytest.mark.shared
DK = "Don't know/Refused"  # the test's wording of a non-substantive option


def _question(shared: Path, n: int) -> dict:
    src = shared / "global-opinion-alignment" / "questions" / "WV7_English.jsonl"
    return json.loads(src.read_text().splitlines()[n])


def _write(path: Path, rows: list[tuple[str, list[str], dict[str, list[float]], str]]) -> None:
    """(question, options, country -> shares, source) per record, in the published CSV layout (no id)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "selections", "options", "source"])
        for text, options, sel, source in rows:
            w.writerow([text, f"defaultdict(<class 'list'>, {sel!r})", repr(options), source])


def _survey_file(shared: Path, path: Path) -> tuple[str, str]:
    """Question A recurs with a DK option added (aligned); question B recurs with another scale (variants)."""
    a, b = _question(shared, 0), _question(shared, 5)
    a_opts, b_opts = a["choices"], b["choices"]
    b_short = b_opts[:2]  # another survey asked it on a two-point scale: a substantive difference
    _write(
        path,
        [
            (a["question"], a_opts, {"Japan": [0.4, 0.3, 0.2, 0.1], "Egypt": [0.7, 0.2, 0.05, 0.05]}, "WVS"),
            (b["question"], b_opts, {"Japan": [0.25] * len(b_opts)}, "WVS"),
            (a["question"], [*a_opts, DK], {"Brazil": [0.3, 0.3, 0.2, 0.1, 0.1], "Japan": [0.5, 0.5, 0, 0, 0]}, "GAS"),
            (b["question"], b_short, {"Japan": [0.6, 0.4], "Brazil": [0.1, 0.9]}, "GAS"),
        ],
    )
    return a["question"], b["question"]


def test_recurring_questions_are_aligned_or_kept_as_variants(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "go.csv"
    a_text, b_text = _survey_file(shared_data, path)
    s = load_opinion_survey(path)
    assert s.problems == []
    by_text: dict[str, list] = {}
    for item in s.questionnaire:
        by_text.setdefault(item.text, []).append(item)
    # A: one question, the union of the two lists (the DK option last); Egypt was not offered DK: share 0
    (a,) = by_text[a_text]
    assert s.aligned == [a.id] and list(a.options.values())[-1] == DK and len(a.options) == 5
    ref = s.reference.countries
    assert ref["EGY"].items[a.id].shares == pytest.approx([0.7, 0.2, 0.05, 0.05, 0.0])
    assert ref["BRA"].items[a.id].shares == pytest.approx([0.3, 0.3, 0.2, 0.1, 0.1])
    assert ref["JPN"].items[a.id].shares == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])  # the first record counts
    assert [(x.country, x.reason) for x in s.skipped] == [("Japan", "duplicate entries for JPN")]
    # B: two questions, keyed by question and options
    b_full, b_short = by_text[b_text]
    assert b_short.id.startswith(b_full.id + "~") and s.variants == {b_full.id: [b_short.id]}
    assert len(b_short.options) == 2 and len(b_full.options) > 2
    assert ref["JPN"].items[b_short.id].shares == pytest.approx([0.6, 0.4])
    assert b_full.id in ref["JPN"].items and b_full.id not in ref["BRA"].items
    assert (
        "1 option-list variants of 1 recurring questions" in s.summary()
        and "1 recurring questions aligned" in s.summary()
    )
    # the same file read again gives the same ids (keyed by content, not by chance)
    assert [i.id for i in load_opinion_survey(path).questionnaire] == [i.id for i in s.questionnaire]
    # with DK dropped, the aligned question is the substantive list only
    drop = load_opinion_survey(path, unsure="drop")
    (a_drop,) = [i for i in drop.questionnaire if i.text == a_text]
    assert DK not in a_drop.options.values() and drop.reference.countries["BRA"].items[a_drop.id].shares == (
        pytest.approx([x / 0.9 for x in (0.3, 0.3, 0.2, 0.1)])
    )


def test_a_file_with_a_few_bad_records_loads_the_rest_and_strict_refuses_it(shared_data: Path, tmp_path: Path) -> None:
    q = [_question(shared_data, n) for n in range(6)]
    rows = [{"question": r["question"], "options": r["choices"], "source": "WVS",
             "selections": {"Japan": [1.0] + [0.0] * (len(r["choices"]) - 1)}} for r in q]  # fmt: skip
    rows[1]["selections"]["Japan"] = [0.5, 0.5]  # two shares for a four-option question
    del rows[3]["options"]
    lines = [json.dumps(r) for r in rows]
    lines[4] = lines[4][:40]  # a truncated line: not valid JSON
    path = tmp_path / "go.jsonl"
    path.write_text("\n".join(lines) + "\n")
    s = load_opinion_survey(path)
    assert [i.text for i in s.questionnaire] == [q[n]["question"] for n in (0, 1, 2, 5)]
    assert [x.line for x in s.problems] == [2, 4, 5]
    assert "4 shares expected, found 2" in s.problems[0].message and "missing field 'options'" in s.problems[1].message
    assert "not valid JSON" in s.problems[2].message
    summary = s.summary()
    assert "3 records with problems left out (first: line 2: " in summary and "line 5: " in summary
    with pytest.raises(DataError, match=r"go\.jsonl: line 2: country 'Japan': 4 shares expected, found 2") as e:
        load_opinion_survey(path, strict=True)
    assert "\n" not in str(e.value)
    path.write_text(lines[4] + "\n")  # nothing valid at all: refused either way
    with pytest.raises(DataError, match=r"go\.jsonl: no valid records \(1 with problems; first: line 1: not valid"):
        load_opinion_survey(path)


def test_wvs_file_with_unknown_codes_missing_codes_and_a_broken_line(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "culturepark" / "Arabic.csv"
    with src.open(newline="", encoding="utf-8") as fh:
        rows = [row for _, row in zip(range(8), csv.reader(fh), strict=False)]
    header = rows[0]
    q1, q2 = header.index("Q1"), header.index("Q2")
    rows[2][q1] = "9"  # line 3: not an option of Q1 (1-4)
    rows[3][q1], rows[3][q2] = "-1", "-2"  # line 4: WVS missing codes (don't know, no answer): not problems
    rows[4] = rows[4][:10]  # line 5: a broken line (too few fields)
    path = tmp_path / "wvs.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    s = load_survey(path)
    assert [r.line for r in s.respondents] == [2, 3, 4, 6, 7, 8]
    by_line = {r.line: r for r in s.respondents}
    assert "Q1" not in by_line[3].answers and "Q2" in by_line[3].answers  # only the bad answer is left out
    assert "Q1" not in by_line[4].answers and "Q2" not in by_line[4].answers
    assert s.problem_count == 2
    assert s.problems == [
        f"line 3: column Q1: code 9 is not an option of Q1 ({Q1_CODES})",
        f"line 5: 10 fields, header has {len(header)}",
    ]
    assert "2 rows or answers with problems left out (first: line 3: column Q1" in s.problem_note()
    with pytest.raises(DataError, match=r"wvs\.csv: line 3: column Q1: code 9 is not an option"):
        load_survey(path, strict=True)


Q1_CODES = "[1, 2, 3, 4]"


def test_labelled_export_with_an_unlabelled_value(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "cultural-trends" / "eg_wvs_wave7_v7_n303.csv"
    lines = src.read_text().splitlines()[:5]
    header = lines[0].split(";")
    k = next(i for i, h in enumerate(header) if h.startswith("Q1 "))
    cells = lines[2].split(";")
    cells[k] = "Extremely vital"  # a label the codebook does not have
    lines[2] = ";".join(cells)
    (tmp_path / "lab.csv").write_text("\n".join(lines) + "\n")
    s = load_survey(tmp_path / "lab.csv")
    assert [r.line for r in s.respondents] == [2, 3, 4, 5] and "Q1" not in s.respondents[1].answers
    assert s.problem_count == 1 and "line 3: column 'Q1 " in s.problems[0] and "'Extremely vital'" in s.problems[0]
    with pytest.raises(DataError, match=r"lab\.csv: line 3: .*unknown answer label 'Extremely vital'"):
        load_survey(tmp_path / "lab.csv", strict=True)
