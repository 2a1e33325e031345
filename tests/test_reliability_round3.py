"""Reliability round three (issue 27, deliveries 1 and 2): no command destroys what it did not create (one
output-path policy), training stops on non-finite numbers, a run binds its input files, credentials in model
URLs are never stored or shown, and the hostile inputs outside the bad-input matrix end in one line.

CLI cases run in-process through `clca.cli.main.main` (a fresh interpreter per case would take minutes)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from clca.store import RunStore


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from clca.cli.main import main

    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (SQLite's -wal/-shm side files and the lock left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    """runs/r1 (a run database with a scenario), a user's folder with notes, input files of every kind."""
    run = tmp_path / "runs" / "r1"
    with RunStore(run) as store:
        store.put("scenario", "EGY/seed-1", {"x": 1})
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("my own notes\n")
    (tmp_path / "in.csv").write_text("B_COUNTRY_ALPHA,Q1\nEGY,1\n")
    (tmp_path / "ref.json").write_text("{}\n")
    (tmp_path / "control.jsonl").write_text('{"messages": []}\n')
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "sotopia").mkdir()
    return tmp_path


@dataclass(frozen=True)
class Writer:
    name: str
    argv: Callable[[Path, str], list[str]]  # (world, out) -> argv
    kind: str  # "file" or "dir"
    overwrite: bool  # takes --overwrite
    input_arg: str | None = None  # a file input of the command (relative to world), to be refused as output


R1 = "runs/r1"
WRITERS = [
    Writer("harness-export", lambda w, o: ["harness", "export", "--culture", "Egypt", "--personas", "1",
                                           "--reference", str(w / "ref.json"), "--out", o], "dir", True, "ref.json"),
    Writer("dialogues-export", lambda w, o: ["dialogues", "export", "--run-dir", str(w / R1), "--out", o], "file",
           False),
    Writer("scenarios-export", lambda w, o: ["scenarios", "export", "--run-dir", str(w / R1), "--out", o], "file",
           False),
    Writer("scenarios-export-sotopia", lambda w, o: ["scenarios", "export", "--run-dir", str(w / R1), "--format",
                                                     "sotopia", "--out", o], "dir", True),
    Writer("scenarios-import", lambda w, o: ["scenarios", "import", str(w / "sotopia"), "--out", o], "file", False),
    Writer("dataset-build", lambda w, o: ["dataset", "build", "--run-dir", str(w / R1), "--variant", "control",
                                          "--control", str(w / "control.jsonl"), "--tokenizer", "none", "--out", o],
           "dir", True, "control.jsonl"),
    Writer("wvs-aggregate", lambda w, o: ["wvs", "aggregate", str(w / "in.csv"), "--out", o], "file", False,
           "in.csv"),
    Writer("report", lambda w, o: ["report", str(w / R1), "--no-figures", "--out", o], "dir", True),
    Writer("compare", lambda w, o: ["compare", str(w / R1), "--no-figures", "--out", o], "dir", True),
    Writer("train-merge", lambda w, o: ["train", "merge", str(w / "adapter"), "--out", o], "dir", True),
    Writer("train-run", lambda w, o: ["train", "run", str(w / "control.jsonl"), "--out", o], "dir", False,
           "control.jsonl"),
]  # fmt: skip


def _policy_cases() -> list[tuple[str, Writer, str]]:
    cases = []
    for w in WRITERS:
        cases += [(f"{w.name}-run-dir", w, R1), (f"{w.name}-run-db", w, f"{R1}/run.sqlite")]
        if w.kind == "dir":
            cases += [(f"{w.name}-folder-of-runs", w, "runs"), (f"{w.name}-foreign-folder", w, "home")]
        if w.input_arg:
            cases.append((f"{w.name}-input", w, w.input_arg))
    return cases


@pytest.mark.parametrize(("case", "writer", "target"), _policy_cases(), ids=[c[0] for c in _policy_cases()])
def test_every_writing_command_refuses_what_it_did_not_create(
    case: str, writer: Writer, target: str, world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run directory, its database, a folder of runs, a user's non-empty folder and the command's own
    input: exit 2 with one line, and every file under the world byte-identical (also with --overwrite,
    except a user's folder, which --overwrite may replace)."""
    before = _tree(world)
    argv = writer.argv(world, str(world / target))
    code, err = _cli(argv, capsys)
    assert code == 2, (case, err)
    line = _one_error_line(err)
    assert target.split("/")[-1] in line, line
    assert _tree(world) == before
    if writer.overwrite and target != "home":
        code, err = _cli([*argv, "--overwrite"], capsys)
        assert code == 2, (case, err)
        _one_error_line(err)
        assert _tree(world) == before


def test_harness_export_replaces_its_own_folder_and_refuses_cwd_without_a_traceback(
    world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = world / "tasks"
    argv = ["harness", "export", "--culture", "Egypt", "--personas", "1", "--item", "Q27", "--out", str(out)]
    assert _cli(argv, capsys)[0] == 0
    first = _tree(out)
    assert ".clca-output" in first and "manifest.json" in first
    assert _cli(argv, capsys)[0] == 0  # clca's own folder: replaced without --overwrite
    assert _tree(out) == first
    monkeypatch.chdir(world / "home")  # `--out .` in a user's folder: refused in one line, nothing touched
    code, err = _cli([*argv[:-1], "."], capsys)
    assert code == 2 and "did not write" in _one_error_line(err)
    assert (world / "home" / "notes.txt").read_text() == "my own notes\n"


# -- training: non-finite numbers -----------------------------------------------------------------------
def test_train_refuses_non_finite_hyper_parameters(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag, value in (("--lr", "inf"), ("--lr", "nan"), ("--epochs", "inf")):
        code, err = _cli(["train", "run", str(world / "control.jsonl"), "--out", str(world / "a"), flag, value],
                         capsys)  # fmt: skip
        assert code == 2, err
        line = _one_error_line(err)
        assert "finite" in line or (flag in line and value in line), line
        assert not (world / "a").exists()


def test_training_rows_without_an_assistant_message_are_refused_in_one_line(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = world / "rows.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    code, err = _cli(["train", "run", str(data), "--out", str(world / "a"), "--max-steps", "1"], capsys)
    assert code == 2
    assert "line 1: no assistant message" in _one_error_line(err)
    assert not (world / "a").exists()


@pytest.mark.slow  # imports transformers (about 20 s on the shared 2-core machine when it is the first)
def test_training_stops_on_a_non_finite_loss_and_saves_nothing(tmp_path: Path) -> None:
    """A callback guard sees the Trainer's logs: a nan loss stops training with the one-line error."""
    from types import SimpleNamespace

    from clca.errors import DataError
    from clca.train._trainer import _finite_guard

    guard = _finite_guard()
    guard.on_log(None, SimpleNamespace(global_step=3), None, logs={"loss": 1.5, "grad_norm": 2.0})
    with pytest.raises(DataError, match=r"step 4: the loss became nan; nothing was saved"):
        guard.on_log(None, SimpleNamespace(global_step=4), None, logs={"loss": math.nan})


# -- a run binds its input files ----------------------------------------------------------------------------
def test_a_changed_norms_file_is_refused_on_resume_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("norms.csv").write_text("norm,culture\nGreet elders first when entering a home,Egypt\n")
    Path("c.yaml").write_text("run_dir: run\ncultures: [Egypt]\nnorms: norms.csv\nscenarios: {n: 1}\n"
                              "models: {teacher: mock, judge: mock, annotator: mock, student: mock}\n")  # fmt: skip
    first, _ = _cli(["run", "c.yaml", "--until", "scenarios"], capsys)
    with RunStore("run", lock=False) as s:
        recorded = s.get_meta("input_hashes")
    assert list(recorded) == ["norms.csv"]
    again, err = _cli(["run", "c.yaml", "--until", "scenarios"], capsys)
    assert again == first and "changed since" not in err  # unchanged inputs: resumed as before
    before = _tree(tmp_path / "run")
    Path("norms.csv").write_text("norm,culture\nTake off your shoes at the door,Egypt\n")
    code, err = _cli(["run", "c.yaml", "--until", "scenarios"], capsys)
    assert code == 2
    assert _one_error_line(err).startswith("error: norms.csv: this input file changed since run was made")
    assert _tree(tmp_path / "run") == before


# -- credentials in model URLs ------------------------------------------------------------------------------
SECRET_URL = "openai:m@http://alice:S3cretPW@127.0.0.1:9/v1"


def test_a_password_in_a_model_url_reaches_neither_the_database_nor_the_report(tmp_path: Path) -> None:
    from clca.llm import ModelSpec
    from clca.report import write_report

    assert ModelSpec.parse(SECRET_URL).public() == "openai:m@http://***@127.0.0.1:9/v1"
    run = tmp_path / "run"
    with RunStore(run) as s:
        s.bind_config({"name": "x", "cultures": ["EGY"], "models": {"student": SECRET_URL}}, "h")
        s.set_meta("servers", [{"model": SECRET_URL}])
        s.fail("scenario", "EGY/s1", f"BackendError: {SECRET_URL}: gave up", data={"model": SECRET_URL})
    paths = write_report(run, tmp_path / "rep", figures=False)
    for f in (run / "run.sqlite", paths.html, paths.markdown):
        assert b"S3cretPW" not in f.read_bytes(), f
    assert "http://***@127.0.0.1:9/v1" in paths.markdown.read_text() + paths.html.read_text()


def test_an_error_line_never_shows_a_url_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(["eval", "--run-dir", str(tmp_path / "ev"), "--culture", "Egypt", "--model",
                      f"{SECRET_URL}?nosuch=1"], capsys)  # fmt: skip
    line = _one_error_line(err)
    assert code == 2 and "S3cretPW" not in err and "http://***@127.0.0.1:9/v1" in line


# == Deliver 2: hostile inputs ==============================================================================
def test_a_huge_culture_name_is_refused_at_once_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from clca.culture import get_culture

    name = "Egypt" * 40_000  # 200k characters: about an hour of pattern searches before the cap
    t0 = time.perf_counter()
    code, err = _cli(["culture", "show", name], capsys)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: run\ncultures: [{name}]\nmodels: {{teacher: mock, judge: mock, annotator: mock, "
                   "student: mock}\n")  # fmt: skip
    code2, err2 = _cli(["config", "check", str(cfg)], capsys)
    assert time.perf_counter() - t0 < 5
    for c, e in ((code, err), (code2, err2)):
        line = _one_error_line(e)
        assert c == 2 and "too long (200000 characters; at most 200)" in line and len(line) < 400, line
    assert get_culture("egypt").iso3 == "EGY"  # ordinary names still resolve


def test_extends_of_a_non_config_file_names_it_without_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"extends: {secret}\nrun_dir: run\ncultures: [Egypt]\n")
    code, err = _cli(["config", "check", str(cfg)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "SECRETHASH" not in err and "is not a config file" in line and str(cfg) in line


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("seed: -5", "seed: Input should be greater than or equal to 0"),
        ("roleplay: {temperature: .inf}", "roleplay.temperature: Input should be a finite number"),
        ("judge: {temperature: .nan}", "judge.temperature: Input should be a finite number"),
        ("eval: {seed: -1}", "eval.seed: Input should be greater than or equal to 0"),
        ("eval: {epsilon: 1.0e+308}", "eval.epsilon: Input should be less than or equal to 0.1"),
        ("eval: {personas: 1000000000}", "eval.personas: Input should be less than or equal to 100000"),
    ],
)
def test_config_check_refuses_bad_seeds_temperatures_and_sizes(
    yaml_text: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: run\ncultures: [Egypt]\n{yaml_text}\nmodels: {{teacher: mock, judge: mock, "
                   "annotator: mock, student: mock}\n")  # fmt: skip
    code, err = _cli(["config", "check", str(cfg)], capsys)
    assert code == 2 and fragment in _one_error_line(err)


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--seed", "-5", "--seed: must be >= 0"), ("--temperature", "inf", "--temperature: must be <= 2.0"),
     ("--epsilon", "1e308", "--epsilon: must be <= 0.1"), ("--personas", "1000000000", "--personas: must be <=")],
)  # fmt: skip
def test_eval_flags_are_bounded_before_any_work(
    flag: str, value: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "ev"
    code, err = _cli(["eval", "--run-dir", str(run), "--culture", "Egypt", "--model", "mock", flag, value], capsys)
    assert code == 2 and fragment in _one_error_line(err)
    assert not run.exists()


def test_a_duplicated_survey_column_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    survey = tmp_path / "s.csv"
    survey.write_text("B_COUNTRY_ALPHA,Q1,Q2,Q1\nEGY,1,2,3\n")
    for argv in (["wvs", "aggregate", str(survey), "--out", str(tmp_path / "ref.json")],
                 ["eval", "--run-dir", str(tmp_path / "ev"), "--culture", "Egypt", "--model", "mock", "--survey",
                  str(survey)]):  # fmt: skip
        code, err = _cli(argv, capsys)
        assert code == 2 and "line 1: column 'Q1' appears twice (columns 2 and 4)" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


def test_aggregate_with_huge_weights_gives_finite_shares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    survey = tmp_path / "s.csv"
    survey.write_text("B_COUNTRY_ALPHA,W_WEIGHT,Q1\nEGY,1e308,1\nEGY,1e308,2\nEGY,1e308,2\nEGY,1e308,2\n")
    out = tmp_path / "ref.json"
    assert _cli(["wvs", "aggregate", str(survey), "--out", str(out), "--quiet"], capsys)[0] == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    shares = json.loads(text)["countries"]["EGY"]["items"]["Q1"]["shares"]
    assert shares[:2] == [0.25, 0.75]


DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("profile.json", lambda p: ["culture", "show", p]),
        ("profile.yaml", lambda p: ["culture", "show", p]),
        ("c.yaml", lambda p: ["config", "check", p]),
        ("ref.json", lambda p: ["eval", "--culture", "Egypt", "--model", "mock", "--run-dir", "ev", "--reference", p]),
        ("q.yaml", lambda p: ["wvs", "items", "--questionnaire", p]),
        ("q.json", lambda p: ["wvs", "items", "--questionnaire", p]),
        ("op.json", lambda p: ["eval", "--culture", "Egypt", "--model", "mock", "--run-dir", "ev", "--opinions", p]),
        ("norms.jsonl", lambda p: ["scenarios", "from-norms", p, "--run-dir", "r", "--model", "mock"]),
        ("seeds.jsonl", lambda p: ["scenarios", "adapt", "--run-dir", "r", "--culture", "Egypt", "--model", "mock",
                                   "--seeds-file", p]),
    ],
)  # fmt: skip
def test_deep_nesting_is_one_line_in_every_reader(
    name: str, argv: Callable[[str], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(("a: " if name.endswith(".yaml") else "") + DEEP_JSON + "\n")
    code, err = _cli(argv(name), capsys)
    assert code == 2 and "nested more than 64 levels deep" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize(
    "argv",
    [
        lambda p: ["culture", "show", p + ".yaml"],
        lambda p: ["eval", "--culture", "Egypt", "--model", "mock", "--run-dir", "ev", "--reference", p + ".json"],
        lambda p: ["eval", "--culture", "Egypt", "--model", "mock", "--run-dir", "ev", "--questionnaire", p + ".yaml"],
        lambda p: ["eval", "--culture", "Egypt", "--model", "mock", "--run-dir", "ev", "--opinions", p + ".json"],
        lambda p: ["scenarios", "adapt", "--run-dir", "r", "--culture", "Egypt", "--model", "mock", "--seeds-file",
                   p + ".jsonl"],
        lambda p: ["wvs", "aggregate", p + ".csv", "--out", "ref.json"],
    ],
    ids=["profile", "reference", "questionnaire", "opinions", "seeds-file", "survey"],
)  # fmt: skip
def test_a_link_to_dev_zero_is_refused_by_every_path_option(
    argv: Callable[[str], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for ext in (".yaml", ".json", ".jsonl", ".csv"):
        Path("zero" + ext).symlink_to("/dev/zero")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _cli(argv("zero"), capsys)
    assert code == 2 and "not a regular file (a device, FIFO or socket)" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_wvs_aggregate_labels_from_a_fifo_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    survey = tmp_path / "s.csv"
    survey.write_text("B_COUNTRY_ALPHA,Q1\nEGY,1\n")
    os.mkfifo(tmp_path / "labels.json")
    code, err = _cli(["wvs", "aggregate", str(survey), "--labels", str(tmp_path / "labels.json"), "--out",
                      str(tmp_path / "ref.json")], capsys)  # fmt: skip
    assert code == 2 and "labels.json: not a regular file" in _one_error_line(err)


@pytest.mark.parametrize("bad", ["../..", "/tmp/elsewhere", "a\nb", "x/y", ".."])
def test_study_run_names_must_be_plain_names(bad: str, tmp_path: Path) -> None:
    import yaml

    from clca.errors import ConfigError
    from clca.study import expand_study

    (tmp_path / "base.yaml").write_text("run_dir: x\ncultures: [Egypt]\n")
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"study": "s", "base": "base.yaml", "run_root": str(tmp_path / "runs"),
                                     "grid": {"v": {"a": {}}}, "extra": {bad: {}}}))  # fmt: skip
    with pytest.raises(ConfigError, match="is not a plain name"):
        expand_study(study)
    assert not (tmp_path / "runs").exists()


# -- run databases: created in one transaction, read without writing ---------------------------------------------
def test_a_run_database_cut_off_while_created_is_completed_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from clca import store as store_mod

    run = tmp_path / "run"
    calls = {"n": 0}
    real = RunStore.set_meta

    def disk_full(self: RunStore, name: str, value: object) -> None:
        calls["n"] += 1
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "set_meta", disk_full)
    with pytest.raises(Exception, match="disk is full"):
        RunStore(run)
    monkeypatch.setattr(RunStore, "set_meta", real)
    assert calls["n"] == 1
    with sqlite3.connect(run / "run.sqlite") as db:  # rolled back: no tables without a version row
        assert db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == []
    with RunStore(run) as s:
        assert s.get_meta("clca_version") is not None
    # a database left with clca's empty tables and no version row (an older clca, cut off): completed
    half = tmp_path / "half"
    half.mkdir()
    with sqlite3.connect(half / "run.sqlite") as db:
        db.executescript(store_mod._SCHEMA)
    with RunStore(half) as s:
        s.put("scenario", "k", {"a": 1})
        assert s.get_meta("clca_version") is not None
    # anything else is refused, and the line says what to delete
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "run.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(Exception, match=r"delete .*run\.sqlite \(and any run\.sqlite-wal, -shm beside it\)"):
        RunStore(other)


@pytest.fixture()
def archived_run(tmp_path: Path) -> Path:
    """A finished run with dialogues, intentions and metrics, on storage clca may not write to."""
    from report_fixtures import build_run

    run = tmp_path / "archive" / "run"
    build_run(run).close()
    (run / ".lock").unlink()
    return run


def test_read_only_commands_read_an_archived_run_without_writing(
    archived_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a read-only mount (where the OS says the folder is not writable): SQLite's immutable mode, no
    journal or lock file created, every byte unchanged; the store refuses any write."""
    import os
    import sqlite3

    from clca import store as store_mod

    real_access = os.access

    def read_only_fs(path: object, mode: int, **kw: object) -> bool:
        if str(path).startswith(str(archived_run)) and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.os, "access", read_only_fs)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in archived_run.iterdir() if p.is_file()}
    out = tmp_path / "out"
    for argv in (
        ["report", str(archived_run), "--out", str(out / "report"), "--no-figures"],
        ["dialogues", "export", "--run-dir", str(archived_run), "--out", str(out / "d.jsonl")],
        ["dialogues", "stats", "--run-dir", str(archived_run), "--json"],
        ["scenarios", "export", "--run-dir", str(archived_run), "--out", str(out / "s.jsonl")],
        ["scenarios", "stats", "--run-dir", str(archived_run), "--json"],
    ):
        code, err = _cli(argv, capsys)
        assert code == 0, (argv, err)
    assert (out / "report" / "report.html").is_file() and (out / "d.jsonl").stat().st_size > 0
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in archived_run.iterdir() if p.is_file()} == before
    with RunStore(archived_run, read_only=True) as s:
        assert s.count("episode") > 0
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only|attempt to write"):
            s.put("scenario", "new", {})


def test_dialogues_export_reports_a_damaged_intention_row(
    archived_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    with sqlite3.connect(archived_run / "run.sqlite") as db:
        key = db.execute("SELECT key FROM artifacts WHERE kind='intention' AND status='ok' LIMIT 1").fetchone()[0]
        db.execute("UPDATE artifacts SET data=? WHERE kind='intention' AND key=?", (json.dumps({"x": 1}), key))
    out = tmp_path / "d.jsonl"
    code, err = _cli(["dialogues", "export", "--run-dir", str(archived_run), "--out", str(out), "--all"], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"the intention row {key} is damaged" in line
    assert not out.exists()


# -- clca serve ------------------------------------------------------------------------------------------------
def test_serve_answers_unknown_routes_and_openapi_with_json_and_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import urllib.error
    import urllib.request

    from clca.llm import MockLLM
    from clca.llm.serving import serve_in_thread

    caplog.set_level(logging.INFO)
    with serve_in_thread(MockLLM(["ok"])) as url:
        root = url.removesuffix("/v1")
        for path, method, status in (("/openapi.json", "GET", 404), ("/docs", "GET", 404), ("/no/such", "GET", 404),
                                     ("/v1/chat/completions", "GET", 405), ("/v1/models", "DELETE", 405)):  # fmt: skip
            req = urllib.request.Request(root + path, method=method)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=30)
            assert e.value.code == status, path
            body = json.loads(e.value.read())
            assert body["error"]["code"] == status
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_non_finite_trained_weights_stop_training() -> None:
    import torch

    from clca.errors import DataError
    from clca.train._trainer import _check_finite_weights

    layer = torch.nn.Linear(2, 2)
    _check_finite_weights(layer)  # finite: passes
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(DataError, match=r"the trained weight weight holds non-finite values; nothing was saved"):
        _check_finite_weights(layer)
    layer.weight.requires_grad_(False)  # frozen base weights are not the adapter's: not checked
    _check_finite_weights(layer)


def test_eval_and_scenario_commands_refuse_a_changed_input_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from clca.wvs._reference import bundled_reference_path

    monkeypatch.chdir(tmp_path)
    shutil.copy(bundled_reference_path(), "ref.json")
    argv = ["eval", "--run-dir", "ev", "--culture", "Egypt", "--model", "mock", "--personas", "1", "--item", "Q27",
            "--reference", "ref.json", "--quiet"]  # fmt: skip
    first, err = _cli(argv, capsys)
    assert "changed since" not in err
    with RunStore("ev", read_only=True) as s:
        assert list(s.get_meta("input_hashes")) == ["ref.json"]
    Path("ref.json").write_text(Path("ref.json").read_text() + "\n")
    code, err = _cli(argv, capsys)
    assert code == 2 and _one_error_line(err).startswith("error: ref.json: this input file changed since ev was made")
    Path("norms.csv").write_text("norm,culture\nGreet elders first,Egypt\n")
    norms = ["scenarios", "from-norms", "norms.csv", "--run-dir", "sc", "--model", "mock", "--quiet"]
    _cli(norms, capsys)
    Path("norms.csv").write_text("norm,culture\nTake off your shoes,Egypt\n")
    code, err = _cli(norms, capsys)
    assert code == 2 and "norms.csv: this input file changed since sc was made" in _one_error_line(err)
