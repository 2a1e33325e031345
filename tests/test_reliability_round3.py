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
