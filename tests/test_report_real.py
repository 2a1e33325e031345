"""The report of a run made by the real stage code: a Sotopia scenario from ../shared/data, role-play,
judge and intention annotation through their packages (scripted model output carrying XSS payloads),
and the WVS evaluation answered by the real embedded model. The report's numbers equal the database
and clca.wvs's own result, and so does the data of its figures; model text and Sotopia's inline goal tags
stay text in a real browser."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import XSS_IMG, XSS_SCRIPT, Dom, browser_or_skip, dump_dom

from clca.intents import IntentConfig, annotate_intents
from clca.judge import JudgeConfig, judge_episodes, kept_episodes
from clca.llm import GenParams, Message, MockLLM
from clca.report import build_summary, write_report
from clca.roleplay import RoleplayConfig, run_roleplay
from clca.scenarios import import_sotopia
from clca.store import RunStore
from clca.wvs import EvalConfig, evaluate

pytestmark = [pytest.mark.slow, pytest.mark.shared]
ITEMS = ["Q27", "Q28"]  # asked in both DEU and USA in the bundled reference
PAYLOAD = f"{XSS_SCRIPT} {XSS_IMG}"


def _scripted(messages: Sequence[Message], params: GenParams) -> str:
    """Valid JSON for whichever schema the stage asks for, with planted markup in every free-text field."""
    prompt = messages[-1].content if hasattr(messages[-1], "content") else messages[-1]["content"]
    if '"title": "AgentAction"' in prompt:
        turn = re.search(r"It is turn (\d+)", prompt)
        n = turn.group(1) if turn else "?"  # a new line each turn: a repeated one is rejected as an echo
        return json.dumps({"action_type": "speak", "argument": f"Guten Tag, zum {n}. Mal. {PAYLOAD}"})
    if '"title": "QualityVerdict"' in prompt:
        return json.dumps({"reasoning": f"Fluent. {PAYLOAD}", "label": "good", "confidence": "confident"})
    if '"title": "MetaVerdict"' in prompt:
        return json.dumps({"critique": f"Agreed. {PAYLOAD}", "label": "aligned", "confidence": "confident"})
    if '"title": "CultureVerdict"' in prompt:
        return json.dumps({"reasoning": f"Polite. {PAYLOAD}", "label": "aligned", "confidence": "confident"})
    if '"title": "IntentAnnotation"' in prompt:
        return json.dumps(
            {"intention": f"To greet. {PAYLOAD}", "cultural_reason": f"Formal greeting. {PAYLOAD}", "confident": True}
        )
    return "not json"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, embedded_llm) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("real") / "run"
    imported = import_sotopia(shared_data / "sotopia" / "sotopia-space")
    # a scenario whose goals carry Sotopia's inline <extra_info>/<strategy_hint> tags: real markup
    tagged = next(s for s in imported.scenarios if any("<" in c.goal for c in s.characters))
    scripted = MockLLM(_scripted, model_id="scripted")
    results: dict = {}
    with RunStore(run_dir) as store:
        store.bind_config({"name": "report-real", "report": {"base_model": "base"}}, "1" * 64)
        store.put("scenario", "DEU/sotopia-000", tagged.model_copy(update={"culture": "DEU"}).model_dump(mode="json"))

        async def go() -> None:
            await run_roleplay(store, scripted, RoleplayConfig(samples=2, max_turns=3, progress=False))
            await judge_episodes(store, scripted, JudgeConfig(progress=False))
            await annotate_intents(store, scripted, IntentConfig(episodes="all", progress=False))
            for alias in ("base", "clca"):  # the same real model under two aliases: mechanics, not quality
                cfg = EvalConfig(
                    cultures=["DEU"], compare=["USA"], personas=1, items=ITEMS, bootstrap=200, progress=False
                )
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
        assert (data.stages["scenario"].ok, data.stages["episode"].ok, data.stages["turn"].ok) == (1, 2, 6)
        assert data.judge.kept == len(kept_episodes(store)) == 2
        assert data.intentions.total == 6 and data.intentions.cultural_share == 1.0
        assert data.stages["survey_answer"].total == 2 * 2 * len(ITEMS)  # aliases x cultures x 1 persona x items
        assert {v.name for s in data.samples for v in s.verdicts} == {"culture", "quality", "meta"}


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
    # the same model under both aliases: every per-question shift is zero
    assert data.wvs.shifts and all(abs(s.delta) < 1e-9 for s in data.wvs.shifts)
    assert {r.target for r in data.wvs.ranks} == {"DEU", "USA"}
    assert [(t.adapted, t.shift.target) for t in data.wvs.target_shifts] == [("clca", "DEU")]


def test_real_report_keeps_model_text_and_sotopia_tags_as_text(real_run: tuple[Path, dict]) -> None:
    run_dir, _ = real_run
    paths = write_report(run_dir)
    page = paths.html.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "<extra_info>" not in page and "<strategy_hint>" not in page
    assert "&lt;extra_info&gt;" in page or "&lt;strategy_hint&gt;" in page  # shown, not dropped
    dom = Dom()
    dom.feed(dump_dom(browser_or_skip(), paths.html))
    assert dom.tags.get("script", 0) == 0 and dom.tags.get("img", 0) == 0
    assert not {"extra_info", "strategy_hint", "clarification_hint"} & set(dom.tags)
    assert not [a for a in dom.attrs if a[1].startswith("on")]
    text = " ".join(dom.text)
    assert f"Guten Tag, zum 0. Mal. {PAYLOAD}" in text  # turn 0 as written (tidying drops repeats)
    assert dom.tags.get("details", 0) == 2 and dom.tags.get("svg", 0) >= 4


def test_real_report_figures_carry_the_stored_numbers(real_run: tuple[Path, dict]) -> None:
    """The figures the report inlines have their data beside them as CSV: the KL figure's rows are the stored
    metric rows, the per-question figure's rows the stored model shares and the bundled survey shares."""
    from clca.wvs import EvalConfig
    from clca.wvs._evaluate import eval_inputs

    run_dir, _ = real_run
    paths = write_report(run_dir)
    out, page = paths.html.parent, paths.html.read_text(encoding="utf-8")
    assert re.findall(r'<figure class="mpl" data-figure="([^"]+)"', page) == ["kl_per_culture", "items_DEU"]
    with RunStore(run_dir) as store:
        rows = {r.key: r.data for r in store.iter("metric")}
    kl = pd.read_csv(out / "kl_per_culture.csv")
    assert len(kl) == 4  # base and clca, persona style, DEU and USA
    for row in kl.itertuples():
        d = rows[f"{row.model}/{row.style}/{row.culture}/base/kl"]
        assert (row.value, row.ci_low, row.ci_high) == (d["mean"], d["lo"], d["hi"])
    items = pd.read_csv(out / "items_DEU.csv", dtype={"option": str})
    assert set(items["item"]) == set(ITEMS) and set(items["series"]) == {"survey", "run · base · persona",
                                                                          "run · clca · persona"}  # fmt: skip
    ref = eval_inputs(EvalConfig(cultures=["DEU"]))[1].countries["DEU"]
    for item in ITEMS:
        sub = items[items["item"] == item]
        survey = sub[sub["series"] == "survey"]
        assert list(survey["option"]) == [str(c) for c in ref.items[item].codes] + ["safeguarded"]
        assert list(survey["share"]) == [*ref.items[item].shares, 0.0]
        for alias in ("base", "clca"):
            model = sub[sub["series"] == f"run · {alias} · persona"]
            assert list(model["share"]) == rows[f"{alias}/persona/DEU/specificity"]["model"][item]
