"""Issue 27, round three: no silent empty results (selections), a new user's first hour (config check of
studies, exact culture names, errors naming the config file and key, changed configs naming the keys,
`wvs compare` refusing unlike setups), and the output details (progress clock, figures once, the seed of
an eval-only run, flags without a type, tables that fold instead of cutting headers)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sqlite3
from pathlib import Path

import pytest
from report_fixtures import build_run
from rich.console import Console
from rich.table import Table

from clca._tables import print_table
from clca.errors import RunMismatchError
from clca.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "clca" / "data" / "configs" / "demo.yaml"


def run_cli(*args: str) -> tuple[int, str, str]:
    """`clca ARGS` in this process: (exit code, stdout, stderr)."""
    from clca.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _eval(run: Path, alias: str, *extra: str) -> tuple[int, str, str]:
    return run_cli("eval", "--model", "mock", "--alias", alias, "--culture", "Egypt", "--item", "Q27",
                   "--item", "Q28", "--bootstrap", "10", "--run-dir", str(run), "--quiet", *extra)  # fmt: skip


# -- Deliver 3: selections that leave nothing ------------------------------------------------------------------
def test_eval_items_the_culture_lacks_exit_2_naming_asked_and_existing(tmp_path: Path) -> None:
    run = tmp_path / "r"
    code, out, err = run_cli("eval", "--model", "mock", "--culture", "South Korea", "--item", "Q1", "--item", "Q2",
                             "--run-dir", str(run), "--quiet")  # fmt: skip
    line = one_error(err)
    assert code == 2 and out == ""
    assert "no survey answers for KOR on the items asked (Q1, Q2)" in line and "KOR: Q27, Q28" in line
    assert not run.exists()  # no empty run left behind


def test_eval_items_dropped_from_a_selection_are_listed_on_stderr(tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    code, out, err = run_cli("eval", "--model", "mock", "--culture", "South Korea", "--item", "Q1", "--item", "Q2",
                             "--item", "Q27", "--bootstrap", "10", "--run-dir", run, "--quiet")  # fmt: skip
    assert code == 0, err
    assert "warning: KOR: 2 of the 3 items asked have no survey answers in the reference and are left out" in err
    assert err.strip().endswith("left out: Q1, Q2")
    assert re.search(r"│ KOR\s+│ persona\s+│ base\s+│ 1 ", out)  # the one item left is evaluated


def test_dropped_items_of_an_item_set_are_named_by_item(tmp_path: Path) -> None:
    """`--item wvs44 --item iw10` (44 + 9 items): the warning names the expanded items a culture lacks (Egypt's
    WVS-7 did not ask Q182; the bundled reference has no Q25, Q36 for Egypt), not the set names (it once said
    "2 of the 2 items asked ... left out: wvs44, iw10")."""
    run = str(tmp_path / "r")
    code, out, err = run_cli("eval", "--model", "mock", "--culture", "Egypt", "--item", "wvs44", "--item", "iw10",
                             "--personas", "2", "--bootstrap", "10", "--run-dir", run, "--quiet")  # fmt: skip
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if ln.startswith("warning: EGY")]
    assert warning == [
        "warning: EGY: 3 of the 53 items asked have no survey answers in the reference and are left out: Q25, Q36, Q182"
    ]
    assert "wvs44" not in err and "iw10" not in err


def test_harness_export_lists_dropped_items_and_refuses_an_empty_selection(tmp_path: Path) -> None:
    out = tmp_path / "tasks"
    code, _, err = run_cli("harness", "export", "--culture", "South Korea", "--item", "Q1", "--item", "Q27",
                           "--personas", "2", "--out", str(out))  # fmt: skip
    assert code == 0 and "warning: KOR: 1 of the 2 items asked" in err and err.strip().endswith("left out: Q1")
    code, _, err = run_cli("harness", "export", "--culture", "South Korea", "--item", "Q1", "--personas", "2",
                           "--out", str(tmp_path / "none"))  # fmt: skip
    assert code == 2 and "no survey answers for KOR on the items asked (Q1)" in one_error(err)
    assert not (tmp_path / "none").exists()


def test_wvs_compare_unknown_alias_culture_and_same_alias_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert _eval(run, "base", "--personas", "3")[0] == 0
    assert _eval(run, "tuned", "--personas", "3")[0] == 0
    code, _, err = run_cli("wvs", "compare", "--base", "base", "--adapted", "adapted", "--culture", "Egypt",
                           "--run-dir", str(run))  # fmt: skip
    assert code == 2 and "--adapted 'adapted': no evaluation of that alias" in one_error(err)
    assert "aliases: base, tuned" in err
    code, _, err = run_cli("wvs", "compare", "--base", "base", "--adapted", "base", "--culture", "Egypt",
                           "--run-dir", str(run))  # fmt: skip
    assert code == 2 and "--base and --adapted are the same alias 'base'" in one_error(err)
    code, _, err = run_cli("wvs", "compare", "--base", "base", "--adapted", "tuned", "--culture", "Japan",
                           "--run-dir", str(run))  # fmt: skip
    assert code == 2 and "--culture JPN: not evaluated" in one_error(err) and "cultures of 'base': EGY" in err
    code, out, err = run_cli("wvs", "compare", "--base", "base", "--adapted", "tuned", "--culture", "Egypt",
                             "--run-dir", str(run))  # fmt: skip
    assert code == 0 and "tuned vs base" in out, err


def test_wvs_compare_refuses_different_persona_counts(tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert _eval(run, "base", "--personas", "5")[0] == 0
    assert _eval(run, "adapted", "--personas", "3")[0] == 0
    code, out, err = run_cli("wvs", "compare", "--base", "base", "--adapted", "adapted", "--culture", "Egypt",
                             "--run-dir", str(run))  # fmt: skip
    line = one_error(err)
    assert code == 2 and out == ""
    assert "different personas for EGY (persona: 5 personas vs persona: 3 personas)" in line


def test_scenarios_export_and_dataset_build_of_an_absent_culture_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    build_run(run, with_metrics=False, with_training=False).close()
    out = tmp_path / "x.jsonl"
    code, _, err = run_cli("scenarios", "export", "--run-dir", str(run), "--out", str(out), "--culture", "Egypt")
    assert code == 2 and "--culture Egypt: no finished scenarios of that culture" in one_error(err)
    assert "cultures with scenarios: DEU, JPN" in err and not out.exists()
    ds = tmp_path / "ds"
    code, _, err = run_cli("dataset", "build", "--run-dir", str(run), "--out", str(ds), "--culture", "EGY",
                           "--tokenizer", "none", "--quiet")  # fmt: skip
    assert code == 2 and "dataset.culture 'EGY': no dialogues of that culture" in one_error(err)
    assert "cultures: DEU, JPN" in err and not ds.exists()


# -- Deliver 4: config check, study plan, culture names, changed configs ------------------------------------------
def _config(tmp_path: Path, body: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(f"extends: {DEMO}\n{body}", encoding="utf-8")
    return p


def test_config_check_refuses_a_culture_name_it_would_have_to_guess(tmp_path: Path) -> None:
    code, _, err = run_cli("config", "check", str(_config(tmp_path, "cultures: [Egyptt]\n")))
    line = one_error(err)
    assert code == 2 and "cultures: unknown culture 'Egyptt'; did you mean Egypt?" in line and "c.yaml" in line
    for exact in ("eg", "S. Korea"):  # a code, a whole-name spelling (demo.yaml itself says Egypt)
        code, out, err = run_cli("config", "check", str(_config(tmp_path, f"cultures: ['{exact}']\n")))
        assert code == 0, (exact, err)


def test_missing_files_name_the_config_file_and_the_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "eval:\n  survey: [nowhere/wvs.csv]\n")
    code, _, err = run_cli("config", "check", str(cfg))
    assert code == 2 and f"{cfg}: eval.survey.0: survey file nowhere/wvs.csv not found" in one_error(err)
    cfg = _config(tmp_path, "models: {student: 'hf:no/such/model'}\n", "m.yaml")
    code, _, err = run_cli("config", "check", str(cfg))
    assert code == 2 and f"{cfg}: models.student: model directory no/such/model not found" in one_error(err)


def test_config_check_recognises_a_study_and_study_plan_checks_every_run(tmp_path: Path) -> None:
    grid = "grid: {variant: {full: {dataset: {variant: full}}, no_filter: {dataset: {variant: no_filter}}}}\n"
    ok = tmp_path / "study.yaml"
    ok.write_text(f"study: s\nbase: {DEMO}\nrun_root: {tmp_path / 'runs'}\n{grid}", encoding="utf-8")
    code, out, err = run_cli("config", "check", str(ok))
    assert code == 0 and "ok (a study of 2 runs, each checked" in out, err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"study: s\nbase: {DEMO}\nrun_root: {tmp_path / 'runs'}\n{grid}"
        "extra: {ctl: {dataset: {variant: control, control_path: missing/control.jsonl}}}\n",
        encoding="utf-8",
    )
    for cmd in (("config", "check"), ("study", "plan")):
        code, out, err = run_cli(*cmd, str(bad))
        line = one_error(err)
        assert code == 2 and out == "", cmd
        assert f"{bad}: run ctl: dataset.control_path: control conversations file missing/control.jsonl" in line
    assert not (tmp_path / "runs").exists()


def test_a_changed_config_names_the_keys_that_differ(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r") as store:
        store.bind_config({"seed": 0, "roleplay": {"max_turns": 6, "samples": 1}, "name": "a"}, "1" * 64)
        with pytest.raises(RunMismatchError, match=r"these keys differ: seed, roleplay\.max_turns\)"):
            store.bind_config({"seed": 1, "roleplay": {"max_turns": 8, "samples": 1}, "name": "a"}, "2" * 64)


# -- Deliver 5: progress, figures, seed, flags, tables ------------------------------------------------------------
def test_progress_clock_starts_at_the_first_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the first result (model loading) is not in the bar's rate: its clock starts there."""
    import clca.runner as runner

    marks: dict[str, float] = {}
    bars: list[object] = []

    class Bar(runner.tqdm):  # type: ignore[misc, name-defined]
        def __init__(self, *a: object, **kw: object) -> None:
            kw["disable"] = False
            kw["file"] = io.StringIO()
            super().__init__(*a, **kw)
            bars.append(self)

    monkeypatch.setattr(runner, "tqdm", Bar)
    loaded = asyncio.Event()

    async def fn(i: int) -> bool:
        if i == 0:
            await asyncio.sleep(0.3)  # the first request waits for the model to load
            marks["loaded"] = bars[0]._time()  # type: ignore[attr-defined]
            loaded.set()
        else:
            await loaded.wait()
        return True

    summary = asyncio.run(runner.run_items(range(6), fn, concurrency=6, desc="answers"))
    bar = bars[0]
    assert summary.ok == 6
    assert bar.start_t >= marks["loaded"]  # type: ignore[attr-defined]
    assert bar.desc == "answers"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_report_shows_the_kl_chart_once(tmp_path: Path) -> None:
    from clca.report import write_report

    run = tmp_path / "run"
    build_run(run, with_training=False).close()
    html = write_report(run).html.read_text(encoding="utf-8")
    assert html.count('data-figure="kl_per_culture"') == 1
    assert 'aria-label="KL to the survey per culture' not in html  # the SVG twin of that figure
    assert 'aria-label="JSD to the survey per culture' in html  # no figure shows JSD: its chart stays
    plain = write_report(run, out_dir=tmp_path / "plain", figures=False).html.read_text(encoding="utf-8")
    assert plain.count('aria-label="KL to the survey per culture') == 1  # without figures: the chart


def test_eval_only_run_shows_its_seed_in_compare(tmp_path: Path) -> None:
    run = tmp_path / "evalrun"
    assert _eval(run, "base", "--personas", "2", "--seed", "1")[0] == 0
    code, out, err = run_cli("compare", str(run), "--out", str(tmp_path / "cmp"), "--no-figures")
    assert code == 0, err
    md = (tmp_path / "cmp" / "summary.md").read_text(encoding="utf-8")
    row = next(r for r in md.splitlines() if r.startswith("| evalrun |"))
    assert row.split("|")[5].strip() == "1", row


def test_flags_show_no_type_in_help() -> None:
    for cmd in (("eval",), ("wvs", "aggregate"), ("dataset", "build"), ()):
        code, out, _ = run_cli(*cmd, "--help")
        assert code == 0 and "--help" in out and "<bool>" not in out, cmd
    code, out, _ = run_cli("eval", "--help")
    assert "<int" in out  # options that take a value keep their type (`<int>`, `<int range>`)


def test_tables_fold_headers_instead_of_cutting_them_at_80_columns() -> None:
    headers = ["culture", "generated", "failed", "judged", "kept", "turns/dialogue", "words/turn", "cultural",
               "tokens_mean", "tokens_p95", "assistant_tokens"]  # fmt: skip

    def render(fold: bool) -> str:
        t = Table(*headers)
        t.add_row("JPN", *[str(1000 + i) for i in range(len(headers) - 1)])
        buf = io.StringIO()
        console = Console(file=buf, width=80, force_terminal=False, color_system=None)  # a pipe: 80 columns
        print_table(t, console) if fold else console.print(t)
        return buf.getvalue()

    assert "…" in render(fold=False)  # rich's default cuts the headers ("generat…")
    text = render(fold=True)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "1009" in text and "JPN" in text


def test_report_sqlite_untouched_by_selection_errors(tmp_path: Path) -> None:
    """A refused selection writes nothing into the run it read (byte-identical database afterwards)."""
    run = tmp_path / "r"
    assert _eval(run, "base", "--personas", "2")[0] == 0
    db = run / "run.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    code, _, _ = run_cli("wvs", "compare", "--base", "base", "--adapted", "nope", "--culture", "Egypt",
                         "--run-dir", str(run))  # fmt: skip
    assert code == 2 and db.read_bytes() == before
