"""The whole study on the real embedded model at a tiny size: report numbers equal the database,
a finished run re-runs with zero model calls, and SIGKILL at many points followed by resumes ends
with the same counts as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"

# The demo config at CI size: every stage runs, each on a few items.
TINY = [
    "scenarios.n=2",
    "roleplay.max_turns=3",
    "roleplay.max_tokens=48",
    "judge.max_tokens=64",
    "intents.max_tokens=48",
    "train.max_steps=4",
    "train.save_steps=2",
    "train.num_train_epochs=1",
    "train.max_length=256",
    "train.per_device_train_batch_size=1",  # one row per step: training runs three times in this module
    "train.gradient_accumulation_steps=1",
    "eval.personas=2",
    'eval.styles=["persona","cultural"]',
    'eval.items=["Q1","Q2","Q3","Q4","Q5","Q6"]',
    "eval.bootstrap=50",
]

# one response cache for the module: the reference run and the resumed runs compared with it
pytestmark = [pytest.mark.slow, pytest.mark.shared_cache]


def _cmd(run_dir: Path) -> list[str]:
    args = [sys.executable, "-m", "clca.cli.main", "run", str(DEMO), "--run-dir", str(run_dir)]
    for s in TINY:
        args += ["--set", s]
    return args


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"
    return env


def _run(run_dir: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(_cmd(run_dir), capture_output=True, text=True, env=_env(), timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _count(db: Path, kind: str) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM artifacts WHERE kind=? AND status='ok'", (kind,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _counts(run_dir: Path) -> dict[str, tuple[int, int]]:
    con = sqlite3.connect(run_dir / "run.sqlite")
    rows = con.execute("SELECT kind, status, COUNT(*) FROM artifacts GROUP BY kind, status").fetchall()
    con.close()
    out: dict[str, list[int]] = {}
    for kind, status, n in rows:
        out.setdefault(kind, [0, 0])[0 if status == "ok" else 1] = n
    return {k: (v[0], v[1]) for k, v in out.items()}


def _kill_when(run_dir: Path, progress: Callable[[], int], target: int, what: str) -> bool:
    """Start a run and SIGKILL it from outside as soon as progress() reaches target; False if it finished first."""
    p = subprocess.Popen(_cmd(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    deadline = time.monotonic() + 1200
    while p.poll() is None and time.monotonic() < deadline:
        if progress() >= target:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.05)  # polling the database, not synchronising on time
    assert p.returncode == 0, f"run ended with {p.returncode} before kill point {what}: {p.stderr.read()[-2000:]}"
    return False


def _kill_after(run_dir: Path, kind: str, n: int) -> bool:
    """Run until the process has written n new artifacts of kind, where it SIGKILLs itself (the store's
    CLCA_TEST_KILL_AFTER hook: exact even when cached responses make a stage take milliseconds).
    False if the run finished first (fewer than n left to do)."""
    env = {**_env(), "CLCA_TEST_KILL_AFTER": f"{kind}:{n}"}
    r = subprocess.run(_cmd(run_dir), capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode in (0, -signal.SIGKILL), r.stderr[-3000:]
    return r.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    _run(run_dir)
    return run_dir


def test_report_numbers_match_database(reference_run: Path) -> None:
    from clca.report import build_summary
    from clca.store import RunStore

    html = reference_run / "report" / "report.html"
    assert html.is_file() and (reference_run / "report" / "summary.md").is_file()
    with RunStore(reference_run) as store:
        data = build_summary(store)
        kinds = store.kinds()
    by_stage = data.stages
    for kind in ("scenario", "episode", "turn", "judgement", "intention", "survey_answer"):
        assert kind in kinds, f"no {kind} stored"
        assert by_stage[kind].ok == kinds[kind].get("ok", 0)
        assert by_stage[kind].failed == kinds[kind].get("failed", 0)
    assert (reference_run / "adapter" / "adapter_model.safetensors").is_file()


def test_rerun_of_finished_run_makes_no_model_calls(reference_run: Path) -> None:
    from clca.store import RunStore

    before = _counts(reference_run)
    _run(reference_run)
    assert _counts(reference_run) == before
    with RunStore(reference_run) as store:
        for stage in ("scenarios", "roleplay", "judge", "intents", "eval"):
            assert store.get_meta(f"stage:{stage}")["model_calls"] == 0, stage


def test_sigkill_at_many_points_then_resume_matches_uninterrupted(reference_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "crashy"
    db = run_dir / "run.sqlite"
    ref = _counts(reference_run)

    def checkpoints() -> int:
        return len(list((run_dir / "adapter" / "checkpoints").glob("checkpoint-*")))

    # Kill points in pipeline order: (kind, n) = die right after the n-th new write of that kind; each
    # resumed run skips what is stored, so every kill interrupts new work. A point with fewer than n
    # items left lets the run go on to the next stage (it is then not counted); 10 kills are required.
    points = [("scenario", 1), ("turn", 1), ("turn", 1), ("episode", 1), ("judgement", 1), ("intention", 1),
              ("intention", 1), ("checkpoint", 1), *[("survey_answer", 4)] * 6]  # fmt: skip
    killed: list[str] = []
    for kind, n in points:
        if kind == "checkpoint":  # training writes no artifacts: killed from outside at its first checkpoint
            hit = _kill_when(run_dir, checkpoints, 1, "training checkpoint")
        else:
            hit = _kill_after(run_dir, kind, n)
        if hit:
            killed.append(f"{kind}:{n}")
    assert len(killed) >= 10, f"killed only at {killed}"
    _run(run_dir)
    got = _counts(run_dir)
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in ref.items()}
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    dup = con.execute(
        "SELECT parent, COUNT(*), COUNT(DISTINCT key) FROM artifacts WHERE kind='turn' GROUP BY parent"
    ).fetchall()
    con.close()
    assert all(n == d for _, n, d in dup)
