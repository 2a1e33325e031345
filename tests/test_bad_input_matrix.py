"""The generated bad-input matrix: for every CLI command and every file argument it takes, feed a missing,
empty, binary, Latin-1, BOM-prefixed wrong-shape, wrong-shape and directory-instead-of-file input (and, for
outputs, a folder / a path under a file / a read-only place); each case must exit 2 with exactly one line
`error: ...` on stderr, no traceback, and no new file left behind.

Most cases run in-process through `clca.cli.main.main` (a fresh Python with torch per case would take
minutes); a handful run as real subprocesses to prove the same holds for the installed entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

READ_ONLY_TARGET = "/proc/clca-no-write/out"  # not creatable, even by root


# -- the kinds of bad input --------------------------------------------------------------------------------
def _wrong(fmt: str) -> str:
    return {"yaml": "- just\n- a list\n", "json": "[1, 2, 3]\n", "jsonl": "[1, 2]\n\"text\"\n",
            "csv": "alpha;beta\n1;2\n"}[fmt]  # fmt: skip


def _latin1(fmt: str) -> bytes:
    return {"yaml": "name: Caf\xe9\n", "json": '{"name": "Caf\xe9"}\n', "jsonl": '{"norm": "Caf\xe9"}\n',
            "csv": "norm,culture\nCaf\xe9 manners,Egypt\n"}[fmt].encode("latin-1")  # fmt: skip


def make_input(path: Path, kind: str, fmt: str) -> None:
    """Write the bad input of `kind` at path (nothing for 'missing')."""
    if kind == "missing":
        return
    if kind == "dir":
        path.mkdir()
        return
    data = {
        "empty": b"",
        "binary": b"\x00\x01\x02\xffPK\x03\x04\x00" * 8,
        "latin1": _latin1(fmt),
        "bom": ("\ufeff" + _wrong(fmt)).encode(),
        "wrong_shape": _wrong(fmt).encode(),
    }[kind]
    path.write_bytes(data)


INPUT_KINDS = ("missing", "empty", "binary", "latin1", "bom", "wrong_shape", "dir")


# -- the commands and their file arguments ---------------------------------------------------------------------
@dataclass(frozen=True)
class FileArg:
    command: str  # a name for the test id
    build: Callable[[str], list[str]]  # argv with the file argument's path filled in
    fmt: str  # the format the argument expects
    name: str  # file name to use
    valid: tuple[str, ...] = ()  # kinds that are valid input for this argument (an empty optional config)


MOCK = ["--model", "mock"]
FILE_ARGS: list[FileArg] = [
    FileArg("config-check", lambda p: ["config", "check", p], "yaml", "c.yaml"),
    FileArg("run", lambda p: ["run", p], "yaml", "c.yaml"),
    FileArg(
        "run-culture-profile",
        lambda p: ["run", "cfg_with_profile.yaml", "--set", f"cultures=[{p}]"],
        "yaml",
        "prof.yaml",
    ),  # fmt: skip
    FileArg("run-norms", lambda p: ["run", "good.yaml", "--set", f"norms={p}"], "csv", "norms.csv"),
    FileArg("run-eval-reference", lambda p: ["run", "good.yaml", "--set", f"eval.reference={p}"], "json", "ref.json"),
    FileArg(
        "run-eval-questionnaire", lambda p: ["run", "good.yaml", "--set", f"eval.questionnaire={p}"], "yaml", "q.yaml"
    ),  # fmt: skip
    FileArg(
        "run-control",
        lambda p: ["run", "good.yaml", "--set", "dataset.variant=control", "--set", f"dataset.control_path={p}"],
        "jsonl",
        "control.jsonl",
    ),  # fmt: skip
    FileArg(
        "scenarios-adapt-seeds",
        lambda p: ["scenarios", "adapt", "--culture", "Japan", "--run-dir", "r", "--seeds-file", p, *MOCK, "--quiet"],
        "jsonl",
        "s.jsonl",
    ),  # fmt: skip
    FileArg(
        "scenarios-adapt-profile",
        lambda p: ["scenarios", "adapt", "--culture", p, "--run-dir", "r", *MOCK, "--quiet"],
        "yaml",
        "p.yaml",
    ),  # fmt: skip
    FileArg(
        "scenarios-from-norms",
        lambda p: ["scenarios", "from-norms", p, "--run-dir", "r", *MOCK, "--quiet"],
        "csv",
        "n.csv",
    ),  # fmt: skip
    FileArg(
        "scenarios-from-norms-jsonl",
        lambda p: ["scenarios", "from-norms", p, "--run-dir", "r", *MOCK],
        "jsonl",
        "n.jsonl",
    ),  # fmt: skip
    FileArg("culture-show", lambda p: ["culture", "show", p], "yaml", "c.yaml"),
    FileArg("culture-show-json", lambda p: ["culture", "show", p], "json", "c.json"),
    FileArg(
        "dataset-build-config",
        lambda p: ["dataset", "build", "--run-dir", "goodrun", "--out", "ds", "--quiet", "--config", p],
        "yaml",
        "d.yaml",
        ("empty",),
    ),  # fmt: skip
    FileArg(
        "dataset-build-control",
        lambda p: [
            "dataset",
            "build",
            "--run-dir",
            "goodrun",
            "--out",
            "ds",
            "--quiet",
            "--variant",
            "control",
            "--control",
            p,
        ],
        "jsonl",
        "c.jsonl",
    ),  # fmt: skip
    FileArg(
        "eval-reference",
        lambda p: ["eval", *MOCK, "--culture", "Egypt", "--reference", p, "--run-dir", "ev", "--quiet"],
        "json",
        "ref.json",
    ),  # fmt: skip
    FileArg(
        "eval-questionnaire",
        lambda p: ["eval", *MOCK, "--culture", "Egypt", "--questionnaire", p, "--run-dir", "ev", "--quiet"],
        "yaml",
        "q.yaml",
    ),  # fmt: skip
    FileArg(
        "eval-survey",
        lambda p: ["eval", *MOCK, "--culture", "Egypt", "--survey", p, "--run-dir", "ev", "--quiet"],
        "csv",
        "w.csv",
    ),  # fmt: skip
    FileArg("wvs-aggregate", lambda p: ["wvs", "aggregate", p, "--out", "agg.json"], "csv", "w.csv"),
    FileArg(
        "wvs-aggregate-questionnaire",
        lambda p: ["wvs", "aggregate", "w_good.csv", "--questionnaire", p, "--out", "agg.json"],
        "yaml",
        "q.yaml",
    ),  # fmt: skip
    FileArg("wvs-items", lambda p: ["wvs", "items", "--questionnaire", p], "yaml", "q.yaml"),
    FileArg("wvs-items-json", lambda p: ["wvs", "items", "--questionnaire", p], "json", "q.json"),
    FileArg(
        "train-run-config",
        lambda p: ["train", "run", "goodds", "--out", "ad", "--config", p],
        "yaml",
        "t.yaml",
        ("empty",),
    ),  # fmt: skip
    FileArg("train-run-dataset", lambda p: ["train", "run", p, "--out", "ad"], "jsonl", "rows.jsonl"),
]

# run-directory arguments (inputs that are folders holding run.sqlite)
RUN_DIR_ARGS: list[FileArg] = [
    FileArg("report", lambda p: ["report", p], "run", "rd"),
    FileArg("scenarios-export", lambda p: ["scenarios", "export", "--run-dir", p, "--out", "x.jsonl"], "run", "rd"),
    FileArg("scenarios-stats", lambda p: ["scenarios", "stats", "--run-dir", p], "run", "rd"),
    FileArg("dialogues-export", lambda p: ["dialogues", "export", "--run-dir", p, "--out", "x.jsonl"], "run", "rd"),
    FileArg("dialogues-stats", lambda p: ["dialogues", "stats", "--run-dir", p], "run", "rd"),
    FileArg(
        "wvs-compare",
        lambda p: ["wvs", "compare", "--base", "a", "--adapted", "b", "--culture", "Egypt", "--run-dir", p],
        "run",
        "rd",
    ),  # fmt: skip
    FileArg("dataset-build", lambda p: ["dataset", "build", "--run-dir", p, "--out", "ds", "--quiet"], "run", "rd"),
    FileArg("dataset-stats", lambda p: ["dataset", "stats", p], "run", "rd"),
    FileArg("train-merge", lambda p: ["train", "merge", p, "--out", "merged"], "run", "rd"),
]
RUN_DIR_KINDS = ("missing", "empty_dir", "file", "corrupt_db", "foreign_db", "binary_db_dir")

# output targets (their inputs are good)
OUT_ARGS: list[FileArg] = [
    FileArg("scenarios-export-out", lambda p: ["scenarios", "export", "--run-dir", "goodrun", "--out", p], "out", ""),
    FileArg("scenarios-import-out", lambda p: ["scenarios", "import", "sotopia", "--out", p], "out", ""),
    FileArg("dialogues-export-out", lambda p: ["dialogues", "export", "--run-dir", "goodrun", "--out", p], "out", ""),
    FileArg("report-out", lambda p: ["report", "goodrun", "--out", p], "outdir", ""),
    FileArg("wvs-aggregate-out", lambda p: ["wvs", "aggregate", "w_good.csv", "--out", p], "out", ""),
    FileArg("run-run-dir", lambda p: ["run", "good.yaml", "--run-dir", p], "outdir", ""),
    FileArg(
        "scenarios-adapt-run-dir",
        lambda p: ["scenarios", "adapt", "--culture", "Japan", "--run-dir", p, *MOCK, "--quiet"],
        "outdir",
        "",
    ),  # fmt: skip
]
OUT_KINDS = ("folder", "under_file", "read_only")
# an output file path that is a folder is only bad for file outputs; for folder outputs a file is bad instead


# -- shared good inputs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of valid inputs that every case starts from (copied per case)."""
    from clca.scenarios import load_seeds, write_scenarios
    from clca.store import RunStore

    d = tmp_path_factory.mktemp("good")
    models = "models: {teacher: mock, judge: mock, annotator: mock, student: mock}\n"
    (d / "good.yaml").write_text(f"run_dir: run\ncultures: [Egypt]\n{models}scenarios: {{n: 1}}\n")
    (d / "cfg_with_profile.yaml").write_text(f"run_dir: run\ncultures: [Egypt]\n{models}")
    with RunStore(d / "goodrun") as s:
        seed = load_seeds()[0]
        s.put(
            "scenario", f"EGY/{seed.provenance.id}", seed.model_copy(update={"culture": "EGY"}).model_dump(mode="json")
        )
    from clca.runlock import LOCK_NAME

    (d / "goodrun" / LOCK_NAME).unlink()
    (d / "goodds").mkdir()
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    (d / "goodds" / "train.jsonl").write_text(json.dumps(conv) + "\n")
    write_scenarios(d / "seeds.jsonl", load_seeds()[:1])
    header = "B_COUNTRY_ALPHA,Q1,Q2\n"
    (d / "w_good.csv").write_text(header + "".join(f"EGY,{1 + i % 4},{1 + i % 3}\n" for i in range(12)))
    _sotopia(d / "sotopia")
    return d


def _sotopia(d: Path) -> None:
    d.mkdir()
    agent = {"first_name": "A", "last_name": "B", "age": 30, "gender": "Woman", "gender_pronoun": "She/her",
             "occupation": "teacher"}  # fmt: skip
    recs = {
        "environment_profiles.jsonl": [
            {
                "env_id": "e1",
                "scenario": "A quiet cafe at noon.",
                "relationship": 2,
                "agent_goals": ["Ask for a favour.", "Decline politely."],
            }
        ],  # fmt: skip
        "agent_profiles.jsonl": [{**agent, "agent_id": "a1"}, {**agent, "agent_id": "a2", "first_name": "C"}],
        "relationship_profiles.jsonl": [
            {"relationship_id": "r1", "agent1_id": "a1", "agent2_id": "a2", "relationship": 2}
        ],  # fmt: skip
        "env_agent_combo_storages.jsonl": [{"combo_id": "c1", "env_id": "e1", "agent_ids": ["a1", "a2"]}],
    }
    for name, rows in recs.items():
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tree(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [x for x in dirnames if x != "cache"]
        for f in filenames + dirnames:
            out.add(os.path.relpath(os.path.join(dirpath, f), root))
    return out


def _cases() -> list[tuple[str, FileArg, str]]:
    cases = [(f"{a.command}-{k}", a, k) for a in FILE_ARGS for k in INPUT_KINDS if k not in a.valid]
    cases += [(f"{a.command}-{k}", a, k) for a in RUN_DIR_ARGS for k in RUN_DIR_KINDS]
    cases += [(f"{a.command}-{k}", a, k) for a in OUT_ARGS for k in OUT_KINDS]
    return cases


CASES = _cases()


def _prepare(root: Path, arg: FileArg, kind: str) -> str:
    """Create the bad input of the case under root; returns the path to put on the command line."""
    if arg.fmt == "run":
        p = root / arg.name
        if kind == "empty_dir":
            p.mkdir()
        elif kind == "file":
            p.write_text("not a folder\n")
        elif kind in ("corrupt_db", "binary_db_dir"):
            p.mkdir()
            (p / "run.sqlite").write_bytes(
                b"\x00\x01garbage" * 50 if kind == "binary_db_dir" else b"SQLite format 3\x00" + b"\xff" * 200
            )
        elif kind == "foreign_db":
            import sqlite3

            p.mkdir()
            con = sqlite3.connect(p / "run.sqlite")
            con.execute("CREATE TABLE customers (id INTEGER)")
            con.commit()
            con.close()
        return arg.name
    if arg.fmt in ("out", "outdir"):
        if kind == "read_only":
            return READ_ONLY_TARGET
        if kind == "under_file":
            (root / "afile").write_text("x")
            return "afile/out"
        if arg.fmt == "out":
            (root / "target").mkdir()
        else:
            (root / "target").write_text("a file where a folder should be\n")
        return "target"
    make_input(root / arg.name, kind, arg.fmt)
    return arg.name


def _copy_good(good: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(good, dst, dirs_exist_ok=True)


@pytest.fixture()
def case_dir(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _copy_good(good, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLCA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


def _run_inprocess(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from clca.cli.main import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    return code, capsys.readouterr().err


def _assert_one_line_error(code: int, err: str, case: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case, code, err[-1500:])
    assert "Traceback" not in err, (case, err[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, err[-1500:])


@pytest.mark.parametrize("case, arg, kind", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case: str, arg: FileArg, kind: str, case_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _prepare(case_dir, arg, kind)
    before = _tree(case_dir)
    code, err = _run_inprocess(arg.build(path), capsys)
    _assert_one_line_error(code, err, case)
    assert _tree(case_dir) == before, (case, sorted(_tree(case_dir) - before))


# -- a few of the same cases through a real process ----------------------------------------------------------
SUBPROCESS = ["config-check-latin1", "run-norms-bom", "eval-reference-binary", "report-foreign_db",
              "wvs-aggregate-out-folder", "scenarios-from-norms-dir"]  # fmt: skip


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_input_through_the_real_entry_point(case: str, tmp_path: Path, good: Path) -> None:
    _, arg, kind = next(c for c in CASES if c[0] == case)
    _copy_good(good, tmp_path)
    path = _prepare(tmp_path, arg, kind)
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(TQDM_DISABLE="1", CLCA_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", *arg.build(path)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    _assert_one_line_error(r.returncode, r.stderr, case)
    assert _tree(tmp_path) == before


def test_the_matrix_is_large() -> None:
    assert len(CASES) >= 200, len(CASES)


# -- usage errors of every command, generated from the command tree ------------------------------------------
def _leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    """(path, click command) of every command of `clca` that runs something (groups left out)."""
    import typer

    from clca.cli.main import app

    out: list[tuple[tuple[str, ...], object]] = []

    def walk(path: tuple[str, ...], cmd: object) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.append((path, cmd))
            return
        for name, sub in sorted(subs.items()):
            walk((*path, name), sub)

    walk((), typer.main.get_command(app))
    return out


def _usage_cases() -> list[tuple[str, list[str], str]]:
    """(id, argv, what the one line must name) for each kind of usage error each command can meet."""
    cases: list[tuple[str, list[str], str]] = []
    for path, cmd in _leaf_commands():
        cid = "-".join(path)
        cases.append((f"{cid}-unknown-option", [*path, "--no-such-option"], "--no-such-option: no such option"))
        params = [p for p in cmd.params if p.name != "help"]  # type: ignore[attr-defined]
        required = [p for p in params if p.required]
        if required:
            p = required[0]
            name = p.opts[0] if p.param_type_name == "option" else p.name.upper()
            cases.append((f"{cid}-missing", list(path), f"{name}: required"))
        for p in params:
            if p.param_type_name != "option":
                continue
            opt = max(p.opts, key=len)
            if p.is_flag:
                cases.append((f"{cid}{opt}-flag-with-value", [*path, f"{opt}=x"], f"{opt}: does not take a value"))
                continue
            cases.append((f"{cid}{opt}-no-value", [*path, opt], f"{opt}: requires an argument"))
            number = _hint(cmd, p.name) in (int, float)
            info = _param_info(cmd, p.name)
            if number:
                cases.append((f"{cid}{opt}-not-a-number", [*path, opt, "abc"], f"{opt}: expected a"))
            if info is not None and number and info.max is not None:
                cases.append((f"{cid}{opt}-above-max", [*path, opt, str(info.max + 1)], f"{opt}: must be <="))
            if info is not None and number and info.min is not None:
                cases.append((f"{cid}{opt}-below-min", [*path, opt, str(info.min - 1)], f"{opt}: must be >"))
            if _choices(cmd, p.name):
                cases.append((f"{cid}{opt}-bad-choice", [*path, opt, "no-such-choice"], f"{opt}: must be one of"))
    extra = [("no-such-command", ["no-such-command"], "no such command"),
             ("no-such-subcommand", ["dataset", "no-such-command"], "clca dataset: no such command")]  # fmt: skip
    return cases + extra


def _signature(cmd: object) -> dict[str, object]:
    import inspect

    from clca.cli._options import original_callback

    fn = original_callback(cmd)
    return {n: p for n, p in inspect.signature(fn).parameters.items()} if fn else {}


def _hint(cmd: object, name: str) -> object:
    """The parameter's type, None removed (`int | None` -> int)."""
    import typing

    from clca.cli._options import original_callback

    hint = typing.get_type_hints(original_callback(cmd)).get(name)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (
        args[0] if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1 else hint
    )


def _param_info(cmd: object, name: str) -> object | None:
    p = _signature(cmd).get(name)
    return getattr(p, "default", None)


def _choices(cmd: object, name: str) -> bool:
    """A Literal parameter, or one mirroring a field of Literal choices (list[Literal] fields too)."""
    import typing

    hint = _hint(cmd, name)
    mirrors = getattr(_param_info(cmd, name), "mirrors", None)
    if mirrors is not None:
        hint = mirrors[0].model_fields[mirrors[1]].annotation
        hint = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
    return typing.get_origin(hint) is typing.Literal


USAGE_CASES = _usage_cases()
LEAVES = sorted(_leaf_commands(), key=lambda pc: -len(pc[0]))


@pytest.mark.parametrize("case, argv, fragment", USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_usage_error_is_one_line(
    case: str, argv: list[str], fragment: str, case_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(case_dir)
    code, err = _run_inprocess(argv, capsys)
    _assert_one_line_error(code, err, case)
    line = err.strip()
    assert fragment in line, (case, line)
    if "no such command" not in fragment:
        path = next(p for p, _ in LEAVES if list(p) == argv[: len(p)])
        assert line.startswith(f"error: clca {' '.join(path)}: "), (case, line)
    assert _tree(case_dir) == before


def test_usage_errors_through_the_real_entry_point(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", "serve", "--port", "99999"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert r.returncode == 2 and r.stderr == "error: clca serve: --port: must be <= 65535 (got 99999)\n", r.stderr


def test_every_command_has_usage_cases() -> None:
    commands = {"-".join(p) for p, _ in _leaf_commands()}
    covered = {c[0].removesuffix("-unknown-option") for c in USAGE_CASES if c[0].endswith("-unknown-option")}
    assert commands == covered and len(commands) >= 30, sorted(commands ^ covered)
    assert len(USAGE_CASES) >= 300, len(USAGE_CASES)
