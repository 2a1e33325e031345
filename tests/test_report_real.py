"""The report of a small real run: Sotopia scenarios from ../shared/data, the embedded model playing,
judging, annotating and answering the survey; the report's numbers equal the database and clca.wvs."""

from __future__ import annotations

import asyncio
import html as htmllib
from pathlib import Path

import pytest
from report_fixtures import Dom, browser_or_skip, dump_dom

from clca.intents import IntentConfig, annotate_intents
from clca.judge import JudgeConfig, judge_episodes, kept_episodes
from clca.report import build_summary, write_report
from clca.roleplay import RoleplayConfig, simulate
from clca.scenarios import import_sotopia
from clca.store import RunStore
from clca.wvs import EvalConfig, evaluate

pytestmark = [pytest.mark.slow, pytest.mark.shared]
ITEMS = ["Q1", "Q2", "Q3"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, embedded_llm) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("real") / "run"
    imported = import_sotopia(shared_data / "sotopia" / "sotopia-space")
    # scenarios whose goals carry Sotopia's inline <extra_info>/<strategy_hint> tags: real markup in model input
    tagged = [s for s in imported.scenarios if any("<" in c.goal for c in s.characters)][:2]
    assert len(tagged) == 2
    results: dict = {}
    with RunStore(run_dir) as store:
        store.bind_config({"name": "report-real", "report": {"base_model": "base"}}, "1" * 64)
        for i, s in enumerate(tagged):
            store.put("scenario", f"JPN/sotopia-{i:03d}", s.model_copy(update={"culture": "JPN"}).model_dump(mode="json"))

        async def go() -> None:
            await simulate(store, embedded_llm, RoleplayConfig(samples=1, max_turns=2, max_tokens=64,
                                                               structured_attempts=2, progress=False))
            await judge_episodes(store, embedded_llm, JudgeConfig(max_tokens=96, structured_attempts=1,
                                                                 progress=False))
            await annotate_intents(store, embedded_llm, IntentConfig(episodes="all", max_tokens=64,
                                                                     structured_attempts=1, progress=False))
            for alias in ("base", "clca"):  # the same model under two aliases: mechanics, not quality
                cfg = EvalConfig(cultures=["DEU"], compare=["USA"], personas=2, items=ITEMS, progress=False)
                results[alias] = await evaluate(store, embedded_llm, alias, cfg)

        asyncio.run(go())
    return run_dir, results


def test_real_run_counts_equal_the_database(real_run: tuple[Path, dict]) -> None:
    run_dir, _ = real_run
    with RunStore(run_dir) as store:
        data = build_summary(store)
        for kind in ("scenario", "episode", "turn", "judgement", "intention", "survey_answer", "metric"):
            assert data.stages[kind].ok == store.count(kind, "ok"), kind
            assert data.stages[kind].failed == store.count(kind, "failed"), kind
        assert data.stages["scenario"].ok == 2
        assert data.stages["episode"].total == 2
        assert data.judge.kept == len(kept_episodes(store))
        assert data.stages["survey_answer"].ok + data.stages["survey_answer"].failed == 2 * 2 * 2 * len(ITEMS)


def test_real_run_metrics_equal_the_wvs_result(real_run: tuple[Path, dict]) -> None:
    run_dir, results = real_run
    with RunStore(run_dir) as store:
        data = build_summary(store)
    assert data.wvs.base_model == "base"
    assert {(r.model, r.culture) for r in data.wvs.scores} == {(a, c) for a in ("base", "clca") for c in ("DEU", "USA")}
    for row in data.wvs.scores:
        for metric, est in row.values.items():
            want = results[row.model].value(row.culture, row.style, metric)
            assert (est.value, est.ci_low, est.ci_high, est.n) == pytest.approx((want.mean, want.lo, want.hi, want.n))
    # same model under both aliases: every per-question shift is zero
    assert data.wvs.shifts and all(abs(s.delta) < 1e-9 for s in data.wvs.shifts)
    assert {r.target for r in data.wvs.ranks} == {"DEU", "USA"}


def test_real_report_escapes_model_text_and_sotopia_tags(real_run: tuple[Path, dict]) -> None:
    run_dir, _ = real_run
    paths = write_report(run_dir)
    page = paths.html.read_text(encoding="utf-8")
    assert "<extra_info>" not in page and "&lt;extra_info&gt;" in page or "&lt;strategy_hint&gt;" in page
    with RunStore(run_dir) as store:
        turns = [r.data["argument"] for r in store.iter("turn") if r.data["argument"]]
    assert turns, "the embedded model produced no turn text"
    assert htmllib.escape(turns[0], quote=True) in page or htmllib.escape(turns[0], quote=False) in page
    browser = browser_or_skip()
    dom = Dom()
    dom.feed(dump_dom(browser, paths.html))
    assert dom.tags.get("script", 0) == 0
    assert not {"extra_info", "strategy_hint", "clarification_hint"} & set(dom.tags)
    assert dom.tags.get("details", 0) == 2 and dom.tags.get("svg", 0) >= 3
