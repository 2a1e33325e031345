"""Every command in README.md and docs/*.md code blocks is checked, so the docs cannot drift from the CLI.

Each `clca ...` line of a code block (fenced `bash`/`console`/`sh` blocks, and README's indented ones) is
classified by the first matching rule of RULES:
- RUN: run as written (in-process, in a fresh folder that has the checkout's `configs/` and `src/`), in
  its block's order; a console block's documented output lines must appear in the real output;
- MOCK: run as written except that the model becomes `mock` (the model is the only expensive part);
- PARSE: parsed by the real command tree (every option exists, every value passes its check) without
  running, with the reason it cannot run here (a GPU, a server, the user's WVS file, minutes of model
  calls), so a renamed option or a changed bound still fails the test.
A command no rule matches fails the test: a new docs command must be classified here. Lines of other
tools (pip, vllm, curl, accelerate, pytest, make) are checked for what they name in the checkout: files,
Makefile targets, `python -m` modules, and the clca command after `-m clca.cli.main` (parsed).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}

RUN, MOCK, PARSE = "run", "mock", "parse"
#: (regex searched in the command, how it is checked, why it is not simply run) - first match wins
RULES: list[tuple[str, str, str]] = [
    (
        r"--survey WVS_|--reference wvs7_reference|wvs aggregate WVS_|--opinions global_opinions",
        PARSE,
        "needs the user's WVS-7 / GlobalOpinionQA file (respondent data is not redistributable)",
    ),  # fmt: skip
    (r"^clca culture (show|list)\b", RUN, ""),
    (r"^clca harness (export|path)\b", RUN, ""),
    (r"^clca wvs compare\b", RUN, ""),
    (r"^clca study plan configs/paper_study\.yaml", RUN, ""),  # exits 2: EXPECTED_FAILURES
    (r"^clca (config check|study plan) configs/controls_(survey_)?study\.yaml", RUN, ""),
    (
        r"^clca eval --model (embedded|embedded\+lora:runs/demo/adapter) (--alias \w+ )?--culture (Egypt|EGY) "
        r"--compare (\"United States\"|USA)",
        MOCK,
        "",
    ),  # fmt: skip
    (r"openai:|\$MODEL|hf:/models|hf:\./my-model", PARSE, "needs a model server or a local model folder"),
    (r"^clca (chat|check|serve)\b", PARSE, "loads the embedded model or serves it (tests/test_serve.py runs both)"),
    (
        r"^clca (scenarios (adapt|from-norms)|simulate|roleplay|judge|intents)\b",
        PARSE,
        "minutes of model calls on the embedded model (tests/test_pipeline_e2e.py runs every stage)",
    ),  # fmt: skip
    (
        r"^clca (scenarios (export|stats|import)|dialogues|report|compare|dataset)\b",
        PARSE,
        "needs a finished run or dataset from the commands before it (tests/test_pipeline_e2e.py)",
    ),  # fmt: skip
    (r"^clca train (run|merge)\b", PARSE, "LoRA training: minutes on CPU, a GPU for the paper preset"),
    (r"^clca (run|study run) configs/paper", PARSE, "the paper's setting: a 70B teacher behind vLLM, 8B students"),
    (r"^clca study run configs/controls_(survey_)?study\.yaml", PARSE, "the controls: 43-90 minutes on 2 cores"),
]
#: commands that the docs show failing here on purpose, with the line they must print
EXPECTED_FAILURES = {
    "clca study plan configs/paper_study.yaml": "run llama-3.1-8b-full: models.student: model directory",
}
OTHER_TOOLS = ("pip", "pytest", "python", ".venv/bin/python", "make", "vllm", "curl", "accelerate", "CMAKE_")


@dataclass
class DocCommand:
    doc: str
    line: int
    text: str
    block: int
    output: list[str] = field(default_factory=list)  # documented output lines (console blocks)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def _logical_lines(body: str, first_line: int) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its line number."""
    out: list[tuple[int, str]] = []
    buf, start = "", first_line
    for i, raw in enumerate(body.splitlines()):
        if not buf:
            start = first_line + i
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        out.append((start, buf + raw))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, body) of every fenced block, and of every indented `clca` line."""
    text = path.read_text(encoding="utf-8")
    out: list[tuple[str, int, str]] = []
    fenced: set[int] = set()
    for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        first = text.count("\n", 0, m.start(2)) + 1
        out.append((m.group(1), first, m.group(2)))
        fenced.update(range(first - 1, first + m.group(2).count("\n") + 1))
    body: list[str] = []
    for n, line in enumerate([*text.splitlines(), ""], start=1):  # indented code blocks outside the fences
        if n not in fenced and line.startswith("    ") and (body or not line.startswith("     ")):
            if not body:
                first = n
            body.append(line[4:])
            continue
        if body and any(re.match(r"^(\$ )?(clca|make) ", b) for b in body):
            out.append(("indented", first, "\n".join(body) + "\n"))
        body = []
    return out


def doc_commands() -> tuple[list[DocCommand], list[DocCommand]]:
    """(clca commands, other tools' command lines) of README.md and docs/*.md."""
    ours: list[DocCommand] = []
    others: list[DocCommand] = []
    block = 0
    for path in DOCS:
        doc = str(path.relative_to(ROOT))
        for lang, first, body in _blocks(path):
            block += 1
            if lang not in SHELL_LANGS and lang != "indented":
                continue
            current: DocCommand | None = None
            for n, line in _logical_lines(body, first):
                s = line.strip()
                cmd = s[2:] if s.startswith("$ ") else s
                if cmd.startswith("clca "):
                    current = DocCommand(doc, n, cmd, block)
                    ours.append(current)
                elif cmd.startswith(OTHER_TOOLS) or re.match(r"^[A-Z_]+=", cmd):
                    others.append(DocCommand(doc, n, cmd, block))
                    current = None
                elif lang == "console" and current is not None and s and not s.startswith("$"):
                    current.output.append(s)
    return ours, others


def _words(command: str) -> list[str]:
    """The command's words, without its trailing comment (shlex: quotes as a shell reads them)."""
    return shlex.split(command, comments=True)


def rule_of(cmd: DocCommand) -> tuple[str, str]:
    for pattern, mode, reason in RULES:
        if re.search(pattern, cmd.text):
            return mode, reason
    raise AssertionError(f"{cmd.where}: `{cmd.text}` matches no rule of tests/test_docs_commands.py: classify it")


def _mode(cmd: DocCommand) -> str | None:
    """The command's mode, None when no rule matches (test_docs_have_commands... reports that)."""
    try:
        return rule_of(cmd)[0]
    except AssertionError:
        return None


def parse_only(args: list[str]) -> list[str]:
    """Parse a command line with the real command tree (options, values and their checks), running nothing;
    returns the command path (['clca', 'wvs', 'compare'])."""
    import typer

    from clca.cli.main import app

    cmd = typer.main.get_command(app)
    ctx = None
    rest, names = list(args), ["clca"]
    while True:
        ctx = cmd.make_context(names[-1], rest, parent=ctx)
        if not hasattr(cmd, "commands"):
            return names
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        names.append(name)
        cmd = sub


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """`clca ARGS` in this process: (exit code, stdout, stderr)."""
    from clca.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def _with_mock_model(args: list[str]) -> list[str]:
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a in ("--model", "-m"):
            out[i + 1] = "mock"
    return out


def _pipeline(words: list[str]) -> tuple[list[str], list[list[str]]]:
    """`clca ... | tail -1` -> the clca words and the filters after it."""
    parts: list[list[str]] = [[]]
    for w in words:
        if w == "|":
            parts.append([])
        else:
            parts[-1].append(w)
    return parts[0], parts[1:]


def _filter(text: str, filters: list[list[str]]) -> str:
    lines = text.splitlines()
    for f in filters:
        assert f[0] in ("tail", "head") and len(f) == 2 and f[1].startswith("-"), f"unsupported filter {f}"
        n = int(f[1][1:])
        lines = lines[-n:] if f[0] == "tail" else lines[:n]
    return "\n".join(lines)


def _workspace(tmp: Path) -> Path:
    """A folder laid out like the checkout for the docs' relative paths (configs/, src/), and the example
    files the docs write before using them (the Bavaria profile of docs/cultures-and-scenarios.md)."""
    (tmp / "configs").symlink_to(ROOT / "configs")
    (tmp / "src").symlink_to(ROOT / "src")
    text = (ROOT / "docs" / "cultures-and-scenarios.md").read_text(encoding="utf-8")
    m = re.search(r"^```yaml\n(name: Bavaria.*?)^```", text, re.S | re.M)
    assert m, "docs/cultures-and-scenarios.md lost its Bavaria profile example"
    (tmp / "bav.yaml").write_text(m.group(1), encoding="utf-8")
    return tmp


# -- fast: every command is found, classified and parses -----------------------------------------------------
def test_docs_have_commands_and_each_is_classified() -> None:
    ours, others = doc_commands()
    assert len(ours) >= 50 and others, "the extraction lost the docs' commands"
    docs = {c.doc for c in ours}
    assert {"README.md", "docs/wvs-evaluation.md", "docs/training.md"} <= docs
    unclassified = [f"{c.where}: {c.text}" for c in ours if _mode(c) is None]
    assert not unclassified, f"docs commands no rule of this test classifies: {unclassified}"
    modes = [rule_of(c)[0] for c in ours]
    assert modes.count(RUN) + modes.count(MOCK) >= 8  # a real share runs, not only parses


@pytest.mark.parametrize("cmd", doc_commands()[0], ids=lambda c: c.where)
def test_docs_command_parses(cmd: DocCommand) -> None:
    """Every documented clca command parses with the current options and bounds ('...' = a placeholder)."""
    words, _filters = _pipeline(_words(cmd.text))
    env = {"MODEL": "openai:m@http://127.0.0.1:1/v1"}
    words = [re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), w) for w in words]
    try:
        names = parse_only(words[1:])
    except Exception as e:  # noqa: BLE001 - the message is the point
        raise AssertionError(f"{cmd.where}: `{cmd.text}` does not parse: {type(e).__name__}: {e}") from None
    assert names[0] == "clca" and len(names) >= 2


def test_other_tools_lines_name_what_exists() -> None:
    """Lines of other tools: the repository files, Makefile targets and modules they name exist."""
    import importlib.util

    _ours, others = doc_commands()
    make_targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    for c in others:
        try:
            words = _words(c.text)
        except ValueError:  # a JSON body quoted over several lines (curl -d '{...}'): the first words only
            words = c.text.split()[:2]
        for w in words:
            if re.match(r"^(tests|benchmarks|configs|scripts)/[\w./-]+$", w):
                assert (ROOT / w).exists(), f"{c.where}: {w} does not exist"
        if words[0] == "make":
            targets = {w for w in words[1:] if "=" not in w}  # VAR=value words set make variables
            assert targets <= make_targets, f"{c.where}: no Makefile target {targets - make_targets}"
        if "-m" in words:
            module = words[words.index("-m") + 1]
            if module.startswith("clca"):
                assert importlib.util.find_spec(module) is not None, f"{c.where}: no module {module}"
            if module == "clca.cli.main" and "..." not in words:
                parse_only(words[words.index("-m") + 2 :])


# -- slow: the runnable blocks, as written ------------------------------------------------------------------
def _runnable_blocks() -> list[list[DocCommand]]:
    by_block: dict[int, list[DocCommand]] = {}
    for c in doc_commands()[0]:
        if _mode(c) in (RUN, MOCK):
            by_block.setdefault(c.block, []).append(c)
    return list(by_block.values())


@pytest.mark.slow
@pytest.mark.parametrize("block", _runnable_blocks(), ids=lambda b: b[0].where)
def test_docs_block_runs(block: list[DocCommand], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runnable commands of one code block, in order, as written (MOCK: with the mock model): exit 0
    (or the documented failure), and a console block's documented output lines in the real output."""
    monkeypatch.chdir(_workspace(tmp_path))
    monkeypatch.setenv("COLUMNS", "120")
    for cmd in block:
        mode, _ = rule_of(cmd)
        words, filters = _pipeline(_words(cmd.text))
        args = words[1:]
        if mode == MOCK:
            args = _with_mock_model(args)
        if "eval" in args[:1] and "--quiet" not in args:
            args.append("--quiet")  # no progress bar in the captured stderr
        code, out, err = run_cli(args)
        expected = EXPECTED_FAILURES.get(cmd.text.split("  #")[0].strip())
        if expected:
            assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, (cmd.where, err)
            continue
        assert code == 0, f"{cmd.where}: `{cmd.text}` exited {code}: {err.strip()[:300]}"
        shown = _filter(out, filters)
        for line in cmd.output:
            if "..." in line:  # an abridged line
                continue
            assert " ".join(line.split()) in " ".join(shown.split()), f"{cmd.where}: output lacks {line!r}"


def test_workspace_profile_is_the_docs_example(tmp_path: Path) -> None:
    """The Bavaria profile the docs' `--culture bav.yaml` commands use is the docs' own example, and valid."""
    ws = _workspace(tmp_path)
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        code, out, err = run_cli(["culture", "show", "bav.yaml", "--json"])
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert '"Bavaria"' in out  # the profile's name, from the docs' YAML block
