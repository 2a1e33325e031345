"""A real `clca simulate` process killed with SIGKILL mid-run resumes without lost or duplicate turns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_roleplay_fixtures import seed_store

from clca.store import RunStore

pytestmark = pytest.mark.slow

ARGS = ["--model", "embedded", "--samples", "1", "--max-turns", "3", "--max-tokens", "40", "--quiet"]


def _clca(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "clca.cli.main", "simulate", "--run-dir", str(run_dir), *ARGS]


def _turns(store: RunStore) -> dict[str, dict]:
    return {r.key: r.data for r in store.iter("turn")}


def test_sigkill_mid_run_then_resume(run_dir: Path):
    with RunStore(run_dir) as store:
        seed_store(store, ["JPN/t-001", "MEX/t-002"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_clca(run_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with RunStore(run_dir) as watch:
        # poll the database until some turns are stored, then kill the process hard
        while watch.count("turn") < 1:
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"clca simulate exited before storing a turn: {proc.stdout.read().decode()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        before = _turns(watch)
        assert before and watch.count("episode", status=None) < 2  # killed mid-run
        assert watch.integrity_ok()

    res = subprocess.run(_clca(run_dir), env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout + res.stderr
    with RunStore(run_dir) as store:
        after = _turns(store)
        for key, data in before.items():  # turns stored before the kill are untouched
            assert after[key] == data
        for ep in ("JPN/t-001/s0", "MEX/t-002/s0"):
            rec = store.get("episode", ep)
            assert rec is not None, f"episode {ep} not finished"
            idx = [r.data["idx"] for r in store.iter("turn", parent=ep)]
            keys = [r.key for r in store.iter("turn", parent=ep)]
            assert idx == list(range(len(idx))) and len(set(keys)) == len(keys)  # contiguous, no duplicates
            if rec.status == "ok":
                assert rec.data["n_turns"] == len(idx) and 1 <= len(idx) <= 3
            else:
                assert rec.error  # a failed episode says why
        assert "episodes:" in res.stdout
