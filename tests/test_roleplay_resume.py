"""A real `clca roleplay` process killed with SIGKILL mid-run resumes without lost or duplicate turns."""

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
    return [sys.executable, "-m", "clca.cli.main", "roleplay", "--run-dir", str(run_dir), *ARGS]


def _turns(store: RunStore) -> dict[str, dict]:
    return {r.key: r.data for r in store.iter("turn")}


def test_sigkill_mid_run_then_resume(run_dir: Path):
    with RunStore(run_dir) as store:
        seed_store(store, ["JPN/t-001", "MEX/t-002"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the store's crash hook kills the process right after its second stored turn: exact even when the
    # response cache answers the whole run in milliseconds (polling from outside would miss it)
    killed = subprocess.run(_clca(run_dir), env={**env, "CLCA_TEST_KILL_AFTER": "turn:2"}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stdout.decode()[-2000:]
    with RunStore(run_dir) as watch:
        before = _turns(watch)
        assert len(before) == 2 and watch.count("episode", status=None) < 2  # killed mid-run
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
