"""Reliability round two (issue 16): one writer per run directory, a failed row for every model error,
a foreign SQLite file left alone, output files following the umask, one-line errors for bad paths."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability_support import schema_mock

from clca.errors import ClcaError, DataError
from clca.store import RunStore
from clca.testing import Fault, fault_server

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(TQDM_DISABLE="1", CLCA_CACHE=str(tmp / "cache"))
    return env


def _holder(run_dir: Path) -> subprocess.Popen[str]:
    """Another process that holds the run directory open for writing until killed."""
    code = (
        "import sys; from clca.store import RunStore; s = RunStore(sys.argv[1]); print('ready', flush=True); "
        "sys.stdin.read()"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


# -- the run-directory lock ------------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_holder_and_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with pytest.raises(ClcaError, match=rf"in use by another clca process \(pid {holder.pid}\)"):
            RunStore(run)
        with RunStore(run, lock=False) as reader:  # readers (report, stats) still read
            assert reader.count("scenario") == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the dead holder's lock: the next writer takes it over, without any clean-up
    with RunStore(run) as store:
        store.put("scenario", "k", {"a": 1})
        with RunStore(run) as again:  # re-entrant inside one process (a stage and its report)
            assert again.count("scenario") == 1
    assert (run / ".lock").read_text() == ""  # released: no pid left behind


def test_clca_run_on_a_locked_run_dir_exits_2_before_any_work(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: run\ncultures: [Egypt]\nmodels: {teacher: mock, judge: mock, annotator: mock, "
                   "student: mock}\nscenarios: {n: 1}\n")  # fmt: skip
    with RunStore(tmp_path / "run") as store:  # this process writes into the run directory
        r = subprocess.run([sys.executable, "-m", "clca.cli.main", "run", str(cfg)], capture_output=True, text=True,
                           cwd=tmp_path, env=_env(tmp_path), timeout=300)  # fmt: skip
        assert r.returncode == 2, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0], r.stderr
        assert store.kinds() == {}  # nothing was written by the refused run


# -- model errors end as failed rows ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, retries, group",
    [(401, 2, "HTTP 401"), (403, 0, "HTTP 403"), (500, 1, "HTTP 500")],
)
def test_server_errors_become_failed_rows_with_status_and_hint(
    tmp_path: Path, status: int, retries: int, group: str
) -> None:
    from clca.llm import load_model
    from clca.scenarios import AdaptConfig, adapt_scenarios

    with fault_server(schema_mock(), Fault(kind="status", status=status)) as fs:
        llm = load_model(fs.model_string(max_retries=retries, backoff_base=0), cache=False)

        async def go() -> object:
            with RunStore(tmp_path / "run") as store:
                s = await adapt_scenarios(store, llm, "Japan", AdaptConfig(n=2, progress=False))
                return s, list(store.iter("scenario", status="failed")), store.failure_reasons("scenario")

        summary, rows, reasons = asyncio.run(go())
    assert summary.failed == 2 and summary.reasons == {group: 2}  # type: ignore[attr-defined]
    assert len(rows) == 2 and reasons == {group: 2}
    for rec in rows:
        assert rec.error.startswith(f"{group}: ")
        assert ("check the API key for " + fs.base_url in rec.error) == (status in (401, 403)), rec.error


def test_failure_reason_groups_and_hints() -> None:
    from clca.errors import BackendError, StructuredOutputError
    from clca.failures import failure_reason

    e = BackendError("openai:m at http://h:1/v1: gave up after 6 attempts; last error: HTTP 503: busy")
    assert failure_reason(e).startswith("HTTP 503: openai:m at http://h:1/v1: gave up")
    assert "hint" not in failure_reason(e)
    e401 = BackendError("openai:m at http://h:1/v1: HTTP 401: bad key")
    assert failure_reason(e401, "turn 2").endswith("hint: check the API key for http://h:1/v1 "
                                                   "(the environment variable named by api_key_env "
                                                   "(default OPENAI_API_KEY))")  # fmt: skip
    assert failure_reason(StructuredOutputError("X", 2, ["bad"])).startswith("StructuredOutputError: ")


# -- a foreign or corrupt SQLite file is refused, never written into ----------------------------------------
def test_report_refuses_a_foreign_sqlite_file(tmp_path: Path) -> None:
    from clca.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    db = run / "run.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(DataError, match="not a clca run database"):
        write_report(run)
    assert db.read_bytes() == before and not (run / "report").exists()
    db.write_bytes(b"garbage that is not sqlite at all" * 10)
    with pytest.raises(DataError, match="not a SQLite database"):
        write_report(run)


def test_report_out_an_existing_file_is_refused(tmp_path: Path) -> None:
    from clca.report import write_report

    with RunStore(tmp_path / "run") as s:
        s.put("scenario", "k", {})
    (tmp_path / "taken").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        write_report(tmp_path / "run", tmp_path / "taken")


@pytest.mark.parametrize("shape", ["file", "under_file", "read_only"])
def test_bad_run_dir_is_a_one_line_error(tmp_path: Path, shape: str) -> None:
    if shape == "read_only" and os.geteuid() == 0:
        pytest.skip("root ignores file modes")
    target = tmp_path / "run"
    if shape == "file":
        target.write_text("x")
    elif shape == "under_file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "run"
    else:
        target.mkdir()
        target.chmod(0o500)
    try:
        with pytest.raises(ClcaError, match="run"):
            RunStore(target)
    finally:
        if shape == "read_only":
            target.chmod(0o700)


# -- output files follow the umask ------------------------------------------------------------------------
def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    from clca.report import write_report
    from clca.scenarios import load_seeds, write_scenarios

    old = os.umask(0o022)
    try:
        with RunStore(tmp_path / "run") as s:
            s.put("scenario", "k", {})
        paths = write_report(tmp_path / "run")
        write_scenarios(tmp_path / "s.jsonl", load_seeds()[:1])
    finally:
        os.umask(old)
    for p in (paths.html, paths.markdown, tmp_path / "s.jsonl"):
        assert p.stat().st_mode & 0o777 == 0o644, p


# -- custom culture profiles through every stage ------------------------------------------------------------
def test_a_custom_profile_goes_through_every_generation_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clca.pipeline import load_run_config, run_pipeline

    monkeypatch.setattr("clca.llm._cache.default_cache_path", lambda: tmp_path / "responses.sqlite")
    (tmp_path / "atl.yaml").write_text("name: Atlantis\nhofstede: {pdi: 20}\n", encoding="utf-8")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "run_dir: run\ncultures: [atl.yaml]\nscenarios: {n: 2, progress: false}\n"
        "roleplay: {max_turns: 2, progress: false}\njudge: {progress: false}\n"
        "intents: {progress: false, episodes: all}\n"
        "dataset: {variant: no_filter, culture_context: country, val_fraction: 0.0, tokenizer: null}\n",
        encoding="utf-8",
    )
    lines: list[str] = []
    with fault_server(schema_mock(model_id="t"), keep_bodies=True) as fs:
        spec = fs.model_string(max_retries=0)
        over = {"run_dir": str(tmp_path / "run"), "cultures": [str(tmp_path / "atl.yaml")]}
        over |= {f"models.{r}": spec for r in ("teacher", "judge", "annotator", "student")}
        cfg = load_run_config(cfg_file, over)
        asyncio.run(run_pipeline(cfg, until="dataset", on_stage=lambda r: lines.append(f"{r.stage}: {r.detail}")))
        bodies = [str(b) for b in fs.counters.request_bodies]
    assert "adapted to Atlantis" in lines[0], lines
    with RunStore(tmp_path / "run", lock=False) as store:
        kinds = store.kinds()
    assert kinds["scenario"].get("ok", 0) == 2
    assert kinds["episode"].get("ok", 0) >= 1 and kinds["judgement"].get("ok", 0) >= 1, kinds
    assert kinds["intention"].get("ok", 0) >= 1, kinds
    # every stage's prompts name the custom culture (the judge and annotator prompts too)
    assert bodies and all("Atlantis" in b for b in bodies), len(bodies)
    rows = (tmp_path / "run" / "dataset" / "train.jsonl").read_text(encoding="utf-8")
    assert "Atlantis" in rows  # the training rows name the culture by its profile's name, not its code


# -- config validation gaps ----------------------------------------------------------------------------------
_BASE = "run_dir: run\nmodels: {teacher: mock, judge: mock, annotator: mock, student: mock}\n"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("cultures: [Egypt]\nseed: 1\nseed: 2\n", "duplicate key 'seed'"),
        ("cultures: [Egypt, Egypt, EGY, eg]\n", "same culture"),
        ("cultures: [egy.yaml]\n", "is the shipped culture Egypt"),
        ("cultures: [Egypt]\nnorms: missing.csv\n", "norms: norms file missing.csv not found"),
        ("cultures: [Egypt]\neval: {reference: nope.json}\n", "eval.reference: reference table nope.json not found"),
        ("cultures: [Egypt]\neval: {items: [Q99999]}\n", "eval.items: unknown survey item(s) Q99999"),
        ("cultures: [Egypt]\nadapted_styles: [bogus]\n", "adapted_styles: 'bogus'"),
        ("cultures: [Egypt]\ncache: no/such/dir/c.sqlite\n", "cache: the folder no/such/dir does not exist"),
        ("cultures: [Egypt]\ndataset: {variant: control, control_path: gone.jsonl}\n", "dataset.control_path"),
        ("cultures: [Egypt]\neval: {survey: [w.csv]}\n", "eval.survey.0: survey file w.csv not found"),
    ],
)
def test_config_check_refuses_what_the_run_would_fail_on(tmp_path: Path, body: str, fragment: str) -> None:
    from typer.testing import CliRunner

    from clca.cli.main import app

    (tmp_path / "egy.yaml").write_text("name: New Egypt\ncode: EGY\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(_BASE + body, encoding="utf-8")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = CliRunner().invoke(app, ["config", "check", "c.yaml"])
    finally:
        os.chdir(old)
    assert isinstance(r.exception, ClcaError), (r.exception, r.output)
    assert fragment in r.exception.one_line(), r.exception.one_line()
    assert not (tmp_path / "run").exists()


def test_missing_norms_file_stops_the_run_before_a_run_database_exists(tmp_path: Path) -> None:
    from clca.pipeline import load_run_config, run_pipeline

    (tmp_path / "c.yaml").write_text(_BASE + "cultures: [Egypt]\n", encoding="utf-8")
    norms = tmp_path / "n.csv"
    norms.write_text("norm,culture\nGreet elders first.,Egypt\n", encoding="utf-8")
    cfg = load_run_config(tmp_path / "c.yaml", {"run_dir": str(tmp_path / "run"), "norms": str(norms)})
    norms.unlink()  # gone between the check and the run
    with pytest.raises(ClcaError, match="norms file"):
        asyncio.run(run_pipeline(cfg))
    assert not (tmp_path / "run").exists()


def test_norms_csv_with_a_bom_loads_and_latin1_is_one_line(tmp_path: Path) -> None:
    from clca.scenarios import load_norms

    p = tmp_path / "n.csv"
    p.write_bytes("\ufeffnorm,culture\nGreet elders first.,Egypt\n".encode())
    assert [n.culture for n in load_norms(p)] == ["Egypt"]
    p.write_bytes("norm,culture\nCaf\xe9 manners matter.,Egypt\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"n.csv: line 2: not UTF-8"):
        load_norms(p)


# -- smaller items: Ctrl-C, stale conversion folders, key variants, Sotopia fields, duplicate options -------------
def test_ctrl_c_says_what_survives_and_exits_130(tmp_path: Path) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text(
        "import time\nfrom clca.cli import main as m\n"
        "@m.app.command('zz-sleep')\ndef zz() -> None:\n    print('ready', flush=True)\n    time.sleep(60)\n"
        "m.main()\n"
    )
    p = subprocess.Popen([sys.executable, str(script), "zz-sleep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env(tmp_path),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert err.strip() == "interrupted: what was stored so far is kept; run the same command again to resume"


def test_stale_convert_folders_are_removed(tmp_path: Path) -> None:
    from clca._files import remove_stale_dirs

    old, fresh = tmp_path / ".convert-abc", tmp_path / ".convert-new"
    old.mkdir()
    fresh.mkdir()
    (old / "model.safetensors").write_bytes(b"x")
    os.utime(old, (0, 0))
    assert remove_stale_dirs(tmp_path, ".convert-") == 1
    assert not old.exists() and fresh.exists()  # a conversion running now is left alone


@pytest.mark.parametrize(
    "echo", ["sk-PLANTED-abc123XYZ", "SK-PLANTED-ABC123XYZ", "sk_planted_abc123xyz", "SK_PLANTED_ABC123XYZ"]
)
def test_key_scrubbing_catches_case_and_separator_variants(echo: str) -> None:
    from clca._scrub import scrub_key

    out = scrub_key(f"401: invalid key {echo} given", "sk-PLANTED-abc123XYZ")
    assert out == "401: invalid key *** given"


@pytest.mark.parametrize(
    "where, value",
    [
        ("combo.env_id", None),
        ("combo.agent_ids", [["a1"], "a2"]),
        ("agent.first_name", {"x": 1}),
        ("agent.age", None),
        ("env.scenario", ["a", "b"]),
    ],
)
def test_sotopia_fields_of_the_wrong_type_are_one_line_errors(tmp_path: Path, where: str, value: object) -> None:
    import json

    from clca.scenarios import import_sotopia

    agent = {"first_name": "A", "last_name": "B", "age": 30, "gender": "Woman", "gender_pronoun": "She/her",
             "occupation": "teacher"}  # fmt: skip
    recs = {
        "env": {"env_id": "e1", "scenario": "A cafe.", "relationship": 2, "agent_goals": ["Ask.", "Decline."]},
        "agent": {**agent, "agent_id": "a1"},
        "combo": {"combo_id": "c1", "env_id": "e1", "agent_ids": ["a1", "a2"]},
    }
    kind, field = where.split(".")
    recs[kind][field] = value
    files = {
        "environment_profiles.jsonl": [recs["env"]],
        "agent_profiles.jsonl": [recs["agent"], {**agent, "agent_id": "a2"}],
        "relationship_profiles.jsonl": [],
        "env_agent_combo_storages.jsonl": [recs["combo"]],
    }
    for name, rows in files.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="record 1"):
        import_sotopia(tmp_path)
    (tmp_path / "env_agent_combo_storages.jsonl").write_text("")
    with pytest.raises(DataError, match="no env-agent combos"):
        import_sotopia(tmp_path)


def test_duplicate_options_are_refused() -> None:
    from clca.cli.serve import _split_options

    with pytest.raises(ClcaError, match="option 'A' is given twice"):
        _split_options("A|A|B")
    assert _split_options("A|B") == ["A", "B"]
