"""`clca compare` on runs evaluated through the real `clca.wvs.evaluate` with a scripted model (fast):
table values equal the stored metric rows, paired statistics equal an independent scipy computation,
exports round-trip, mismatched setups are refused (or marked with --allow-different).
The same command on a real three-run study of the embedded model: tests/test_study_compare.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clca.errors import ConfigError, DataError
from clca.llm import MockLLM
from clca.report._compare import build_comparison, eval_config
from clca.report._compare_render import write_comparison
from clca.report._export import tidy_frames
from clca.report._stats import holm, paired_bootstrap, wilcoxon_p
from clca.store import RunStore
from clca.wvs import evaluate

ITEMS = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"]


def _probs(alias: str, seed: int, tilt: float):
    def fn(messages: Sequence[Any], options: Sequence[str]) -> list[float]:
        text = "".join(getattr(m, "content", str(m)) for m in messages)
        h = int(hashlib.sha256(f"{alias}/{seed}/{text}".encode()).hexdigest()[:12], 16)
        rng = np.random.default_rng(h)
        p = rng.dirichlet(np.ones(len(options)))
        p[0] += tilt  # the "adapted" model leans to the first option
        return list(p / p.sum())

    return fn


def mock_run(
    run_dir: Path,
    *,
    seed: int = 0,
    variant: str = "full",
    tilt: float = 0.5,
    eval_extra: dict[str, Any] | None = None,
) -> Path:
    """A run directory whose survey answers and metric rows come from clca.wvs.evaluate (scripted model)."""
    cfg = {
        "name": run_dir.name,
        "seed": seed,
        "cultures": ["Egypt"],
        "compare": ["United States"],
        "models": {"student": "embedded"},
        "dataset": {"variant": variant},
        "eval": {"styles": ["persona", "cultural"], "personas": 3, "items": ITEMS, "bootstrap": 50,
                 "progress": False, **(eval_extra or {})},
    }  # fmt: skip
    ev = eval_config(cfg, "test")
    with RunStore(run_dir) as store:
        store.bind_config(cfg, hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest())
        asyncio.run(evaluate(store, MockLLM(option_probs=_probs("base", seed, 0.0)), "base", ev))
        adapted = ev.model_copy(update={"styles": ["persona"]})
        asyncio.run(evaluate(store, MockLLM(option_probs=_probs("adapted", seed, tilt)), "adapted", adapted))
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "full": mock_run(root / "full"),
        "seed1": mock_run(root / "seed1", seed=1, variant="dialogue_only", tilt=0.2),
        "personas5": mock_run(root / "personas5", eval_extra={"personas": 5}),
    }


def _stored(run: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(run / "run.sqlite")
    rows = con.execute("SELECT key, data FROM artifacts WHERE kind='metric' AND status='ok'").fetchall()
    con.close()
    return {k: json.loads(d) for k, d in rows if k.count("/") == 4 and k.split("/")[3] == "base"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clca.cli.main", "compare", *args], capture_output=True, text=True, cwd=cwd, timeout=1800
    )


def test_table_values_equal_stored_metric_rows(runs: dict[str, Path]) -> None:
    comp = build_comparison([runs["full"], runs["seed1"]])
    assert [r.label for r in comp.runs] == ["full", "seed1"]
    assert {r.dataset_variant for r in comp.runs} == {"full", "dialogue_only"}
    n = 0
    for label in ("full", "seed1"):
        for key, data in _stored(runs[label]).items():
            alias, style, culture, _, metric = key.split("/")
            (row,) = [r for r in comp.rows if (r.run, r.model, r.style, r.culture) == (label, alias, style, culture)]
            e = row.values[metric]
            assert (e.value, e.ci_low, e.ci_high) == (data["mean"], data["lo"], data["hi"])
            assert row.per_item[metric] == data["per_item"]
            n += 1
    assert n == len([m for r in comp.rows for m in r.values]) and n > 20
    # grouping: base rows first, then the adapted rows by dataset variant (the ablations)
    egy = comp.rows_of("EGY")
    assert [r.group for r in egy] == ["base model"] * 4 + ["dataset: full", "dataset: dialogue_only"]
    # best per column: lower KL is better, higher 1-JSD is better
    assert comp.best["EGY"]["kl"] == min(r.values["kl"].value for r in egy)
    assert comp.best["EGY"]["similarity"] == max(r.values["similarity"].value for r in egy)


def test_paired_statistics_equal_independent_scipy(runs: dict[str, Path]) -> None:
    comp = build_comparison([runs["full"]], resamples=4000, seed=3)
    stored = _stored(runs["full"])
    pairs = [p for p in comp.paired if p.kind == "adapted vs base"]
    assert {(p.culture, p.metric) for p in pairs} >= {("EGY", "kl"), ("USA", "kl"), ("EGY", "jsd")}
    for p in pairs:
        a = stored[f"adapted/persona/{p.culture}/base/{p.metric}"]["per_item"]
        b = stored[f"base/persona/{p.culture}/base/{p.metric}"]["per_item"]
        d = np.array([a[q] - b[q] for q in sorted(a)])
        assert p.unit == "questions" and p.n == len(d) == len(ITEMS)
        assert p.diff == pytest.approx(d.mean(), abs=1e-12)
        if np.any(d != 0):
            assert p.p == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)
        ref = stats.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", random_state=1)
        width = ref.confidence_interval.high - ref.confidence_interval.low
        assert p.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.08 * width)
        assert p.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.08 * width)
    # Holm across the two cultures and the pair's specificity test (EGY vs USA), per metric: step-down
    for metric in ("kl", "jsd"):
        spec = [s for s in comp.specificity if s.metric == metric and s.kind == "adapted vs base"]
        assert len(spec) == 1 and (spec[0].target, spec[0].comparison) == ("EGY", "USA")
        members: list[Any] = [p for p in pairs if p.metric == metric] + spec
        fam = sorted((p for p in members if p.p is not None), key=lambda p: p.p)
        m = len(fam)
        running = 0.0
        for i, p in enumerate(fam):
            running = max(running, min(1.0, (m - i) * p.p))
            assert p.p_holm == pytest.approx(running)


def test_bootstrap_matches_scipy_and_holm_matches_definition() -> None:
    rng = np.random.default_rng(7)
    for n in (8, 30, 200):
        d = rng.normal(0.1, 0.5, size=n)
        mean, lo, hi = paired_bootstrap(d, resamples=20000, seed=0)
        ref = stats.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", random_state=0)
        se = d.std(ddof=1) / np.sqrt(n)
        assert mean == pytest.approx(d.mean())
        assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05 * se)
        assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05 * se)
    assert wilcoxon_p([0.0, 0.0]) is None
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])


def test_baseline_row_pairs_every_row(runs: dict[str, Path]) -> None:
    comp = build_comparison([runs["full"], runs["seed1"]], baseline="full:base:persona")
    vs = [p for p in comp.paired if p.kind == "vs baseline"]
    rows = {p.row for p in vs}
    assert "full:adapted:persona" in rows and "seed1:base:cultural" in rows and "full:base:persona" not in rows
    sb = _stored(runs["seed1"])
    fb = _stored(runs["full"])
    p = next(p for p in vs if p.row == "seed1:adapted:persona" and p.culture == "EGY" and p.metric == "w1")
    a, b = sb["adapted/persona/EGY/base/w1"]["per_item"], fb["base/persona/EGY/base/w1"]["per_item"]
    d = [a[q] - b[q] for q in sorted(a)]
    assert p.diff == pytest.approx(float(np.mean(d)))
    assert p.p == pytest.approx(stats.wilcoxon(d).pvalue)
    with pytest.raises(ConfigError, match="no such row"):
        build_comparison([runs["full"]], baseline="full:base:anthropological")


def test_cli_writes_report_and_exports_that_round_trip(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    r = _cli(str(runs["full"]), str(runs["seed1"]), "--out", str(out), "--baseline", "full:base:persona", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = r.stdout.strip().splitlines()
    assert printed[-1] == str(out / "compare.html")  # the headline first, the report's path last
    assert printed[0].startswith("KL, row minus baseline") and "detectable: " in r.stdout
    assert "EGY full:adapted:persona vs full:base:persona: " in r.stdout
    comp = build_comparison([runs["full"], runs["seed1"]], baseline="full:base:persona")
    for name, want in tidy_frames(comp).items():
        got = pd.read_csv(out / f"{name}.csv", dtype={"item": str, "option": str})
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), want)
    dist = pd.read_csv(out / "distributions.csv", dtype={"option": str})
    assert set(dist.columns) == {"run", "model", "style", "culture", "item", "option", "model_share", "survey_share"}
    sums = dist.groupby(["run", "model", "style", "culture", "item"])[["model_share", "survey_share"]].sum()
    assert np.allclose(sums["model_share"], 1.0) and np.allclose(sums["survey_share"], 1.0)
    for tex in ("table_main.tex", "table_ablations.tex"):
        text = (out / tex).read_text()
        assert r"\toprule" in text and r"\bottomrule" in text and r"\textbf{" in text
    assert "dialogue\\_only" in (out / "table_ablations.tex").read_text()
    figs = ["kl_per_culture", "ablations", "items_EGY"]
    for f in figs:
        assert (out / f"{f}.pdf").read_bytes()[:4] == b"%PDF"
        assert (out / f"{f}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not pd.read_csv(out / f"{f}.csv").empty
    kl = pd.read_csv(out / "kl_per_culture.csv")
    row = kl[(kl["run"] == "full") & (kl["model"] == "adapted") & (kl["culture"] == "EGY")]
    assert row["value"].item() == _stored(runs["full"])["adapted/persona/EGY/base/kl"]["mean"]
    html = (out / "compare.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(figs)
    assert "img-src data:" in html and "<script" not in html
    assert "unit of resampling is the question" in html
    md = (out / "summary.md").read_text()
    assert "full:adapted:persona" in md and "Holm" in md
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cmp.")]  # no temporary folder left


def test_mismatched_setup_refused_or_marked(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    r = _cli(str(runs["full"]), str(runs["personas5"]), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "eval.personas (5 vs 3)" in line and "--allow-different" in line
    assert not out.exists()
    write_comparison([runs["full"], runs["personas5"]], out, allow_different=True, figures=False)
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["runs"][1]["differs"] == ["personas"]
    assert {row["run"] for row in comp["rows"] if row["marked"]} == {"personas5"}
    assert "differs from the first run in: personas" in (out / "compare.html").read_text()
    assert "$^\\dagger$" in (out / "table_main.tex").read_text()
    assert not list(out.glob("*.png"))


def test_item_sets_differ_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    fewer = mock_run(tmp_path / "fewer", eval_extra={"items": ITEMS[:5]})
    with pytest.raises(ConfigError, match=r"items \(EGY\).*Q6"):
        build_comparison([runs["full"], fewer])
    with pytest.raises(DataError, match="not a run directory"):
        build_comparison([runs["full"], tmp_path / "nope"])
    with pytest.raises(ConfigError, match="given twice"):
        build_comparison([runs["full"], runs["full"]])


def test_accuracy_resampled_over_personas(shared_data: Path, tmp_path: Path) -> None:
    from clca.wvs import Answer, default_questionnaire, load_survey, personas_from_survey

    files = [str(shared_data / "cultural-trends" / f) for f in ("eg_wvs_wave7_v7_n303.csv", "us_wvs_wave7_v7_n303.csv")]
    run = mock_run(tmp_path / "survey", eval_extra={"survey": files, "personas": 6})
    comp = build_comparison([run], resamples=1000)
    p = next(p for p in comp.paired if p.metric == "accuracy" and p.culture == "EGY")
    assert p.unit == "personas" and p.n == 6 and p.n_items == len(ITEMS)
    # independent: each persona's accuracy from its real answers and the stored model answers
    survey = load_survey(files[0], default_questionnaire())
    personas = personas_from_survey(survey, "EGY", 6, 0)
    with RunStore(run) as store:
        ans = {}
        for rec in store.iter("survey_answer", prefix=""):
            a = Answer.model_validate(rec.data)
            if a.style == "persona" and a.culture == "EGY":
                ans[(rec.key.split("/")[0], a.persona, a.item)] = a

    def acc(alias: str, pid: str, real: dict[str, int]) -> float:
        hits = []
        for q, code in real.items():
            a = ans.get((alias, pid, q))
            if a is not None:
                hits.append(1.0 if a.codes[int(np.argmax(a.probs))] == code else 0.0)
        return float(np.mean(hits))

    d = [acc("adapted", x.id, x.answers) - acc("base", x.id, x.answers) for x in personas]
    assert p.diff == pytest.approx(float(np.mean(d)))
    stored = _stored(run)
    a, b = stored["adapted/persona/EGY/base/accuracy"]["per_item"], stored["base/persona/EGY/base/accuracy"]["per_item"]
    di = [a[q] - b[q] for q in sorted(a)]
    if any(x != 0 for x in di):
        assert p.p == pytest.approx(stats.wilcoxon(di).pvalue)
