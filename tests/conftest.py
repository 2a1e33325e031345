"""Shared fixtures: the real embedded model (loaded once per session) and ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLCA_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests that need it skip with a clear message when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set CLCA_SHARED_DATA); skipping")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded model, shared by all tests in the session."""
    from clca.llm import load_model

    llm = load_model("embedded", cache=False)
    yield llm


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
