"""The study report: numbers equal the database, escaping of model text, files, CLI, terminal table, speed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import typer
from report_fixtures import HOSTILE, QUESTIONS, XSS_IMG, XSS_SCRIPT, build_run
from rich.console import Console
from typer.testing import CliRunner

from clca.cli import report as report_cli
from clca.errors import ConfigError, DataError
from clca.judge import DiscardRule, discard_reasons, kept_episodes
from clca.report import (
    _svg,
    build_summary,
    render_html,
    render_markdown,
    render_terminal_summary,
    write_report,
)
from clca.store import RunStore
from clca.wvs import bootstrap_ci


@pytest.fixture()
def store(run_dir: Path) -> RunStore:
    s = build_run(run_dir)
    yield s
    s.close()


@pytest.fixture()
def hostile_run(run_dir: Path) -> Path:
    build_run(run_dir, hostile=True).close()
    return run_dir


def test_stage_counts_equal_the_database(store: RunStore) -> None:
    data = build_summary(store)
    for kind in ("scenario", "episode", "turn", "judgement", "intention", "survey_answer", "metric"):
        st = data.stages[kind]
        assert st.ok == store.count(kind, "ok"), kind
        assert st.failed == store.count(kind, "failed"), kind
        assert st.reasons == store.failure_reasons(kind), kind
    assert data.stages["scenario"].failed == 2 and data.stages["episode"].failed == 2
    per_culture = Counter(r.key.split("/")[0] for r in store.iter("episode"))
    assert data.stages["episode"].by_culture == dict(per_culture)
    assert data.cultures == ["DEU", "JPN"]
    assert data.episodes.turns == store.count("turn")
    assert data.episodes.mean_turns == 4.0
    assert [(r.stage, r.seconds, r.model_calls) for r in data.stage_runs] == [("roleplay", 12.5, 40)]


def test_judge_counts_follow_the_judge_discard_rule(store: RunStore) -> None:
    data = build_summary(store)
    reasons = discard_reasons(store, DiscardRule())
    assert data.judge.kept == len(kept_episodes(store)) > 0
    assert data.judge.dropped == sum(1 for r in reasons.values() if r not in (None, "not judged")) > 0
    assert data.judge.not_judged == sum(1 for r in reasons.values() if r == "not judged") == 4
    assert data.judge.failed == store.count("judgement", "failed") == 2
    assert sum(data.judge.drop_reasons.values()) == data.judge.dropped
    assert sum(c.kept for c in data.judge.by_culture.values()) == data.judge.kept
    # a stricter rule drops more, and the report follows the rule it is given
    strict = DiscardRule(
        meta_not_aligned=["very_confident", "confident", "not_sure"],
        quality_bad=["very_confident", "confident", "not_sure"],
        culture_not_aligned=["very_confident", "confident", "not_sure"],
    )
    assert build_summary(store, rule=strict).judge.kept == len(kept_episodes(store, strict)) < data.judge.kept
    # the rule the run's dataset stage used (config dataset.judge_rule) is the report's default
    store.set_meta("config", {"dataset": {"judge_rule": strict.model_dump(mode="json")}})
    assert build_summary(store).judge.kept == len(kept_episodes(store, strict))
    store.set_meta("config", {"dataset": {"judge_rule": {"quality_bad": ["sometimes"]}}})
    with pytest.raises(ConfigError, match="run config dataset.judge_rule: quality_bad.0"):
        build_summary(store)


def test_intention_shares_equal_the_database(store: RunStore) -> None:
    data = build_summary(store)
    rows = list(store.iter("intention"))
    cultural = [r for r in rows if r.data["label"] == "cultural"]
    assert data.intentions.total == len(rows)
    assert data.intentions.cultural == len(cultural)
    assert data.intentions.cultural_share == pytest.approx(len(cultural) / len(rows))
    assert data.intentions.failed == store.count("intention", "failed")
    for c, ci in data.intentions.by_culture.items():
        n = [r for r in rows if r.key.startswith(c + "/")]
        assert ci.total == len(n) and ci.cultural == sum(r.data["label"] == "cultural" for r in n)


def test_metric_tables_carry_the_stored_wvs_values(store: RunStore) -> None:
    wvs = build_summary(store).wvs
    stored = {r.key: r.data for r in store.iter("metric")}
    assert wvs.base_model == "base"
    assert len(wvs.scores) == 3 * 2  # (base persona, base cultural, clca persona) x (DEU, JPN)
    for row in wvs.scores:
        assert row.role == ("base" if row.model == "base" else "adapted")
        for metric in ("kl", "jsd", "similarity", "w1", "accuracy", "safeguarded"):
            d = stored[f"{row.model}/{row.style}/{row.culture}/base/{metric}"]
            est = row.values[metric]
            assert (est.value, est.ci_low, est.ci_high) == (d["mean"], d["lo"], d["hi"])
            assert est.n == len(QUESTIONS) and est.ci_low < est.value < est.ci_high
    # the robustness variant perm1 (KL 9.0) is not mixed into the main table
    assert all(r.values["kl"].value < 5 for r in wvs.scores)
    assert wvs.answers_by_model == {"base": 10} and wvs.safeguarded_answers == 2


def test_missing_intervals_are_bootstrapped_over_questions(run_dir: Path) -> None:
    with RunStore(run_dir) as s:
        s.put("metric", "base/persona/DEU/base/kl", {"mean": 0.3, "per_item": {"Q1": 0.1, "Q2": 0.3, "Q3": 0.5}})
        est = build_summary(s).wvs.scores[0].values["kl"]
    _, lo, hi = bootstrap_ci([0.1, 0.3, 0.5])
    assert (est.ci_low, est.ci_high) == (lo, hi) and lo < 0.3 < hi


def test_base_model_comes_from_the_argument_or_the_config(store: RunStore) -> None:
    assert build_summary(store, base_model="clca").wvs.base_model == "clca"
    store.set_meta("config", {"report": {"base_model": "clca"}})
    data = build_summary(store)
    assert data.wvs.base_model == "clca"
    assert {r.model for r in data.wvs.scores if r.role == "base"} == {"clca"}


def test_shift_is_adapted_minus_base_per_question(store: RunStore) -> None:
    wvs = build_summary(store).wvs
    stored = {r.key: r.data for r in store.iter("metric")}
    deu = [s for s in wvs.shifts if s.culture == "DEU"]
    assert [s.question for s in deu] == QUESTIONS  # numeric order: Q2 before Q10
    q = deu[3]
    want = (
        stored["clca/persona/DEU/base/jsd"]["per_item"][q.question]
        - stored["base/persona/DEU/base/jsd"]["per_item"][q.question]
    )
    assert q.delta == pytest.approx(want)
    assert {(s.base, s.adapted) for s in wvs.shifts} == {("base (persona)", "clca (persona)")}


def test_similarity_grid_and_target_ranks(store: RunStore) -> None:
    wvs = build_summary(store).wvs
    stored = store.get("metric", "clca/persona/JPN/specificity").data["similarity"]
    cells = {(c.model, c.culture): c for c in wvs.similarity}
    cell = cells[("clca (persona) as JPN", "JPN")]
    assert cell.target == "JPN" and cell.similarity == stored["JPN"]
    assert ("clca (persona) as JPN", "USA") in cells  # the reference culture is always a column
    rank = next(r for r in wvs.ranks if r.model == "clca (persona)" and r.target == "JPN")
    assert rank.rank == 1 and rank.cultures == len(stored) and rank.reference_similarity == stored["USA"]


def test_target_shifts_compare_adapted_with_base(store: RunStore) -> None:
    wvs = build_summary(store).wvs
    assert {(t.adapted, t.shift.style, t.shift.target) for t in wvs.target_shifts} == {
        ("clca", "persona", "DEU"),
        ("clca", "persona", "JPN"),
    }
    t = next(t.shift for t in wvs.target_shifts if t.shift.target == "JPN")
    a = store.get("metric", "clca/persona/JPN/specificity").data["similarity"]
    b = store.get("metric", "base/persona/JPN/specificity").data["similarity"]
    assert t.shift_target == pytest.approx(a["JPN"] - b["JPN"]) and t.shift_target > 0
    assert t.shift_reference == pytest.approx(a["USA"] - b["USA"])
    assert t.kl_base == store.get("metric", "base/persona/JPN/base/kl").data["mean"]


def test_sample_dialogues_carry_verdicts_and_intentions(store: RunStore) -> None:
    data = build_summary(store, samples=6)
    assert len(data.samples) == 6 and data.n_dialogues == store.count("episode")
    assert {s.culture for s in data.samples} == {"DEU", "JPN"}  # spread over cultures
    for s in data.samples:
        assert [t.idx for t in s.turns] == list(range(4))
        ep = store.get("episode", s.key)
        assert ep is not None and ep.status == "ok"
        for t in s.turns:
            it = store.get("intention", f"{s.key}/t{t.idx:03d}")
            assert (t.intention is not None) == (it.status == "ok")
            assert (t.intention_error is not None) == (it.status == "failed")
    judged = [s for s in data.samples if s.kept is not None]
    assert judged and all({v.name for v in s.verdicts} == {"culture", "quality", "meta"} for s in judged)
    assert build_summary(store, samples=6).samples == data.samples  # deterministic


def test_html_is_escaped_everywhere(hostile_run: Path) -> None:
    paths = write_report(hostile_run)
    html = paths.html.read_text(encoding="utf-8")
    assert XSS_SCRIPT not in html and XSS_IMG not in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text, not dropped
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    md = paths.markdown.read_text(encoding="utf-8")
    assert "<script" not in md.lower() and "<img" not in md.lower()
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)  # every chart is well-formed XML (labels escaped)


def test_report_files_are_written_atomically(hostile_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    paths = write_report(hostile_run, out)
    assert paths.html == out / "report.html" and paths.markdown == out / "summary.md"
    figures = [f"{name}.{ext}" for name in ("items_DEU", "kl_per_culture") for ext in ("csv", "svg")]
    assert sorted(p.name for p in out.iterdir()) == [*figures, "report.html", "summary.md"]  # no temp files left
    html = paths.html.read_text(encoding="utf-8")
    assert 'src="http' not in html and 'href="http' not in html and "@import" not in html  # self-contained
    assert html.count("<details") == 14  # all 14 finished dialogues are sampled by default


def _stored_metric(run_dir: Path, metric: str) -> dict[tuple[str, str, str], dict]:
    with RunStore(run_dir) as s:
        rows = [(r.key.split("/"), r.data) for r in s.iter("metric")]
    return {(k[0], k[1], k[2]): d for k, d in rows if len(k) == 5 and k[3] == "base" and k[4] == metric}


def test_report_embeds_the_compare_figures_with_their_data(hostile_run: Path) -> None:
    """The compare report's matplotlib figures, inline as SVG (no <img>), their data beside them as CSV:
    the KL figure's CSV is the stored KL rows, the per-question figure's CSV the stored model shares."""
    paths = write_report(hostile_run)
    out, html = paths.html.parent, paths.html.read_text(encoding="utf-8")
    assert re.findall(r'<figure class="mpl" data-figure="([^"]+)"', html) == ["kl_per_culture", "items_DEU"]
    assert "<img" not in html.lower() and html.count("<svg") == html.count("</svg>")
    assert "`kl_per_culture` (KL per culture)" in paths.markdown.read_text(encoding="utf-8")
    for name in ("kl_per_culture", "items_DEU"):
        assert all((out / f"{name}.{ext}").stat().st_size > 0 for ext in ("svg", "csv"))
        assert (
            (out / f"{name}.svg")
            .read_text(encoding="utf-8")
            .strip()
            .endswith(re.search(rf'data-figure="{name}".*?(<svg.*?</svg>)', html, re.S).group(1)[-200:])
        )  # the file is the figure the page shows
    kl = pd.read_csv(out / "kl_per_culture.csv")
    stored = _stored_metric(hostile_run, "kl")
    assert len(kl) == len(stored) == 8  # (base persona, base cultural, clca, the planted alias) x 2 cultures
    for row in kl.itertuples():
        d = stored[(row.model, row.style, row.culture)]
        assert (row.value, row.ci_low, row.ci_high) == (d["mean"], d["lo"], d["hi"])
    items = pd.read_csv(out / "items_DEU.csv", dtype={"option": str})
    with RunStore(hostile_run) as s:
        shares = s.get("metric", "clca/persona/DEU/specificity").data["model"]
    mine = items[items["series"] == "run · clca · persona"]
    assert len(mine) > 0 and set(mine["item"]) <= set(shares)
    for item, grp in mine.groupby("item"):
        assert list(grp["share"]) == shares[item][: len(grp)]
    assert set(items["series"]) >= {"survey", "run · base · persona"}
    assert write_report(hostile_run, figures=False).html.read_text(encoding="utf-8").count('class="mpl"') == 0


def test_report_says_why_figures_are_missing(run_dir: Path) -> None:
    """A survey file the run names that is gone: the report is still written, with a one-line reason."""
    store = build_run(run_dir)
    store.set_meta("config", {"name": "x", "cultures": ["DEU", "JPN"], "eval": {"survey": ["nowhere/wvs.csv"]}})
    store.close()
    paths = write_report(run_dir)
    html = paths.html.read_text(encoding="utf-8")
    assert re.findall(r'<p class="err">(figures not drawn:[^<]*)', html) == [
        "figures not drawn: nowhere/wvs.csv: no such file"
    ]
    assert 'class="mpl"' not in html and sorted(p.name for p in paths.html.parent.iterdir()) == [
        "report.html",
        "summary.md",
    ]
    assert "figures not drawn: nowhere/wvs.csv" in paths.markdown.read_text(encoding="utf-8")


def test_write_report_takes_an_open_store(store: RunStore, tmp_path: Path) -> None:
    paths = write_report(store, tmp_path / "out", samples=2)
    assert paths.html.is_file() and paths.html.read_text(encoding="utf-8").count("<details") == 2


def test_write_report_refuses_a_directory_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a run directory"):
        write_report(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_cli_prints_the_report_path(hostile_run: Path) -> None:
    app = typer.Typer()
    report_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `report` a named subcommand
    res = CliRunner().invoke(app, ["report", str(hostile_run), "--samples", "3"])
    assert res.exit_code == 0, res.output
    path = Path(res.output.strip())
    assert path == hostile_run / "report" / "report.html" and path.is_file()
    assert path.read_text(encoding="utf-8").count("<details") == 3


def test_markdown_tables_match_the_summary(store: RunStore) -> None:
    data = build_summary(store)
    md = render_markdown(data)
    ok, failed = data.stages["episode"].ok, data.stages["episode"].failed
    assert f"| Episodes (dialogues) | {ok} | {failed} |" in md
    assert f"{data.judge.kept} kept" in md
    assert "| DEU | base | persona | base |" in md


def test_dataset_and_training_summaries(store: RunStore) -> None:
    data = build_summary(store)
    assert [d.path for d in data.datasets] == ["dataset"]
    ds = data.datasets[0]
    assert ds.variant == "full" and ds.rows == {"train": 40, "val": 6} and ds.rows_by_task["train"]["intent"] == 16
    assert [t.path for t in data.trainings] == ["adapters/full"]  # the checkpoint copy is not counted twice
    tr = data.trainings[0]
    assert tr.steps == 10 and tr.final_loss == pytest.approx(1.5) and tr.final_eval_loss == 1.9
    assert len(tr.loss) == 10 and tr.eval_loss == [(10.0, 1.9)] and tr.info["train_tokens"] == 4000
    html = render_html(data)
    assert 'aria-label="Training loss"' in html and "adapters/full" in html


def test_empty_run_renders(run_dir: Path) -> None:
    with RunStore(run_dir) as s:
        data = build_summary(s)
    assert all(st.total == 0 for st in data.stages.values())
    html = render_html(data)
    assert "No WVS metrics in this run yet." in html and "No finished dialogues" in html
    assert "<svg" not in html


def test_terminal_summary_prints_counts(hostile_run: Path) -> None:
    console = Console(record=True, width=140)
    with RunStore(hostile_run) as s:
        s.fail("scenario", "DEU/seed-999", "[bold red]markup[/] in a reason")
        data = render_terminal_summary(s, console=console)
    text = console.export_text()
    assert re.search(rf"scenarios\s*│\s*{data.stages['scenario'].ok}\s*│\s*3", text)
    assert f"kept {data.judge.kept}, dropped {data.judge.dropped}" in text
    assert "[bold red]markup" in text  # printed literally, not interpreted as rich markup


def test_svg_helpers_escape_and_draw() -> None:
    vals = {("A<b>", HOSTILE): (0.5, 0.4, 0.6), ("A<b>", "ok"): (0.2, None, None)}
    svg = _svg.bar_chart(["A<b>"], [HOSTILE, "ok"], vals, title="t <script>")
    root = ET.fromstring(str(svg))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}rect[@class='bar']")) == 2
    assert "<script" not in str(svg) and "<img" not in str(svg)
    div = _svg.diverging_bars(["Q1", "Q2"], [-0.2, 0.1], title="shift")
    assert len(ET.fromstring(str(div)).findall(f".//{ns}rect[@class='bar']")) == 2
    line = _svg.line_chart({"loss": [(1, 2.0), (2, 1.5)]}, title="loss")
    assert len(ET.fromstring(str(line)).findall(f".//{ns}polyline")) == 1
    hm = _svg.heatmap(["m"], ["DEU", "JPN"], {("m", "DEU"): 0.7, ("m", "JPN"): 0.6}, title="h", highlight={"m": "DEU"})
    cells = ET.fromstring(str(hm)).findall(f".//{ns}rect[@class='cell']")
    assert [c.get("stroke") for c in cells] == ["#e07b00", None]


def test_report_of_a_few_hundred_dialogues(tmp_path: Path) -> None:
    # its speed is measured in benchmarks/bench_report.py, not asserted here
    s = build_run(
        tmp_path / "big", cultures=("CHN", "DEU", "GBR", "MEX", "JPN"), scenarios_per_culture=30, samples=2, turns=6
    )
    assert s.count("episode") == 5 * (30 * 2 - 1)
    data = build_summary(s)
    html = render_html(data)
    s.close()
    assert html.count("<details") == 30 and data.stages["turn"].ok == 5 * 59 * 6
