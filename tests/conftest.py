"""Shared fixtures: the real embedded model (loaded once per session), ../shared/data, and cache isolation.

Caches: every test gets its own response cache ($CLCA_CACHE in a fresh temporary directory), so no
test is answered by an earlier run or by the user's cache. A test (or a module) marked
`@pytest.mark.shared_cache` uses the response cache shared by the whole test session instead (e.g.
an uninterrupted reference run and the resumed runs compared with it). The converted embedded model
($CLCA_MODEL_CACHE) stays the user's, so the GGUF file is converted once, not once per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLCA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker (and the subprocesses it starts) computes with its share of the cores."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and int(workers) > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = str(max(1, (os.cpu_count() or 1) // int(workers)))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's response cache (never the user's); the converted models stay where they are."""
    from clca.llm._embedded import models_dir

    models = models_dir()  # resolved from the environment before it is changed
    cache = tmp_path_factory.mktemp("clca-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLCA_MODEL_CACHE", str(models))
        mp.setenv("CLCA_CACHE", str(cache))
        yield cache


@pytest.fixture(autouse=True)
def _own_cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test its own response cache unless it is marked `shared_cache` (subprocesses inherit it)."""
    if request.node.get_closest_marker("shared_cache") is None:
        monkeypatch.setenv("CLCA_CACHE", str(tmp_path / "clca-cache"))


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
