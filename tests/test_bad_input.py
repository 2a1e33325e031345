"""Bad input through the real `clca` CLI: each case is one line `error: ...` naming the problem and where
it is, exit code 2, no traceback, and nothing half-written (no new output, previous output unchanged)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability_support import schema_mock

from clca.testing import fault_server

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(TQDM_DISABLE="1", CLCA_CACHE=str(tmp / "cache"), **extra)
    return env


def clca(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clca.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env or _env(tmp),
        timeout=300,
    )


def assert_user_error(r: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2, exactly one `error:` line on stderr naming every fragment, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# -- scenario files --------------------------------------------------------------------------------
def _seed_record() -> dict:
    from clca.scenarios import load_seeds

    return load_seeds()[0].model_dump(mode="json")


def test_empty_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "seeds.jsonl").write_text("\n\n", encoding="utf-8")
    r = clca(tmp_path, "scenarios", "adapt", "--culture", "Japan", "--run-dir", "run", "--seeds-file", "seeds.jsonl",
             "--model", "mock", "--quiet")  # fmt: skip
    assert_user_error(r, "seeds.jsonl", "no scenario records")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "drop, where",
    [(("setting",), "field 'setting'"), (("characters", 1, "goal"), "field 'characters.1.goal'")],
)
def test_scenario_record_with_a_missing_field(tmp_path: Path, drop: tuple, where: str) -> None:
    good, bad = _seed_record(), _seed_record()
    node = bad
    for k in drop[:-1]:
        node = node[k]
    del node[drop[-1]]
    (tmp_path / "seeds.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    r = clca(tmp_path, "scenarios", "adapt", "--culture", "Japan", "--run-dir", "run", "--seeds-file", "seeds.jsonl",
             "--model", "mock", "--quiet")  # fmt: skip
    assert_user_error(r, "seeds.jsonl", "record 2", where, "required")
    assert not (tmp_path / "run").exists()


# -- WVS respondent files and questionnaires ----------------------------------------------------------
def _broken_survey(shared_data: Path, tmp: Path, how: str) -> tuple[Path, tuple[str, ...]]:
    """The first rows of a real WVS file (culturepark/Arabic.csv), broken in one way."""
    src = shared_data / "culturepark" / "Arabic.csv"
    with src.open(newline="", encoding="utf-8") as fh:
        rows = [row for _, row in zip(range(20), csv.reader(fh), strict=False)]
    header = rows[0]
    out = tmp / f"{how}.csv"
    if how == "delimiter":
        out.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
        return out, ("line 1", "delimiter")
    if how == "no_country":
        drop = {header.index("B_COUNTRY"), header.index("B_COUNTRY_ALPHA")}
        rows = [[c for i, c in enumerate(r) if i not in drop] for r in rows]
        expect: tuple[str, ...] = ("line 1", "no country column")
    else:  # a non-numeric code in row 6 (line 6), column Q3
        rows[5][header.index("Q3")] = "often"
        expect = ("line 6", "column Q3", "non-numeric code 'often'")
    with out.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return out, expect


@pytest.mark.parametrize("how", ["delimiter", "no_country", "non_numeric"])
def test_broken_wvs_file_to_aggregate(shared_data: Path, tmp_path: Path, how: str) -> None:
    bad, expect = _broken_survey(shared_data, tmp_path, how)
    previous = tmp_path / "reference.json"
    previous.write_text('{"previous": "output"}\n', encoding="utf-8")
    before = _digest(previous)
    r = clca(tmp_path, "wvs", "aggregate", bad.name, "--out", previous.name, "--strict")  # a bad row: refused
    assert_user_error(r, bad.name, *expect)
    assert _digest(previous) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".reference.json")]  # no temp file left


@pytest.mark.parametrize("how", ["delimiter", "no_country", "non_numeric"])
def test_broken_wvs_file_to_eval(shared_data: Path, tmp_path: Path, how: str) -> None:
    bad, expect = _broken_survey(shared_data, tmp_path, how)
    r = clca(tmp_path, "eval", "--model", "mock", "--culture", "Iraq", "--survey", bad.name, "--run-dir", "ev",
             "--personas", "1", "--bootstrap", "0", "--quiet", "--strict")  # fmt: skip
    assert_user_error(r, bad.name, *expect)
    assert not (tmp_path / "ev").exists()


QUESTIONNAIRE = """\
language: en
items:
  - id: Q1
    theme: test theme
    text: A first question written for this test.
    options: {1: agree, 2: disagree}
  - id: Q2
    theme: test theme
    text: A second question, which lacks its answer options.
"""


def test_questionnaire_label_that_is_not_text(tmp_path: Path) -> None:
    """YAML reads an unquoted yes/no as booleans; the error says so instead of calling the label empty."""
    (tmp_path / "q.yaml").write_text(QUESTIONNAIRE.replace("agree, 2: disagree", "yes, 2: no"), encoding="utf-8")
    r = clca(tmp_path, "wvs", "items", "--questionnaire", "q.yaml")
    assert_user_error(r, "q.yaml", "item Q1", "option 1", "not text", "quote it")


def test_questionnaire_item_without_options(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "q.yaml").write_text(QUESTIONNAIRE, encoding="utf-8")
    good, _ = _broken_survey(shared_data, tmp_path, "non_numeric")  # never read: the questionnaire fails first
    r = clca(tmp_path, "wvs", "aggregate", good.name, "--out", "ref.json", "--questionnaire", "q.yaml")
    assert_user_error(r, "q.yaml", "item Q2", "no options")
    assert not (tmp_path / "ref.json").exists()
    r = clca(tmp_path, "eval", "--model", "mock", "--culture", "Egypt", "--questionnaire", "q.yaml", "--run-dir", "ev",
             "--personas", "1", "--bootstrap", "0", "--quiet")  # fmt: skip
    assert_user_error(r, "q.yaml", "item Q2", "no options")
    assert not (tmp_path / "ev").exists()


# -- backends ---------------------------------------------------------------------------------------
def test_missing_api_key_fails_before_any_connection(tmp_path: Path) -> None:
    """A non-loopback server needs the key; the check runs when the model is built, before any request
    (`.invalid` never resolves, so a connection attempt would read 'connection failed' instead)."""
    url = "http://clca-api.invalid:9/v1"
    r = clca(tmp_path, "eval", "--model", f"openai:gpt@{url}", "--culture", "Egypt", "--run-dir", "ev", "--quiet")
    line = assert_user_error(r, "OPENAI_API_KEY", "is not set", url)
    assert "connection" not in line and "attempts" not in line
    assert not (tmp_path / "ev").exists()
    r = clca(tmp_path, "chat", "--model", f"openai:gpt@{url}?api_key_env=MY_KEY", "hello")
    assert_user_error(r, "MY_KEY", "is not set")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    r = clca(tmp_path, "eval", "--model", f"openai:m@{url}?max_retries=1&backoff_base=0", "--culture", "Egypt",
             "--run-dir", "ev", "--quiet")  # fmt: skip
    assert_user_error(r, url, "gave up after 2 attempts", "connection failed")
    assert not (tmp_path / "ev").exists()


# -- run directories ---------------------------------------------------------------------------------
def test_run_dir_created_by_a_different_config_is_refused(tmp_path: Path) -> None:
    with fault_server(schema_mock()) as fs:
        spec = fs.model_string(backoff_base=0)
        (tmp_path / "a.yaml").write_text(
            f"run_dir: run\ncultures: [Japan]\nscenarios: {{n: 1}}\n"
            f"models: {{teacher: '{spec}', judge: '{spec}', annotator: '{spec}', student: '{spec}'}}\n",
            encoding="utf-8",
        )
        first = clca(tmp_path, "run", "a.yaml", "--until", "scenarios")
        assert first.returncode == 0, first.stderr[-2000:]
        db = tmp_path / "run" / "run.sqlite"
        con = sqlite3.connect(db)
        before = con.execute("SELECT kind, key, status, data FROM artifacts ORDER BY kind, key").fetchall()
        hash_before = con.execute("SELECT value FROM meta WHERE name='config_hash'").fetchone()
        con.close()
        assert before, "the first run stored nothing"
        sent = fs.counters.requests
        second = clca(tmp_path, "run", "a.yaml", "--until", "scenarios", "--set", "seed=1")
        assert_user_error(second, "run", "different configuration", "new run directory", "delete")
        assert fs.counters.requests == sent  # the refused run sent no request
    con = sqlite3.connect(db)
    assert con.execute("SELECT kind, key, status, data FROM artifacts ORDER BY kind, key").fetchall() == before
    assert con.execute("SELECT value FROM meta WHERE name='config_hash'").fetchone() == hash_before
    con.close()
