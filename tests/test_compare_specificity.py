"""`clca compare`: minimum detectable effect, specificity (difference-in-differences, target rank, verdict)
against base and a reference arm, the dose-response figure, and issue 27 (eval-only runs, --no-figures).

Runs are planted as stored rows (the metric rows `clca.wvs.evaluate` writes, with per-question values chosen
here) so that every expected number is known; the detectable effect is checked against statsmodels, the
difference-in-differences and its interval against a direct numpy computation. The issue-27 runs are
evaluated through the real `clca.wvs.evaluate` with a scripted model (tests/test_compare.py's `_probs`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clca.errors import ConfigError
from clca.llm import MockLLM
from clca.report._compare import build_comparison
from clca.report._compare_render import write_comparison
from clca.report._dose import dose_series
from clca.report._power import detectable_effect_size, minimum_detectable
from clca.store import RunStore
from clca.wvs import EvalConfig, evaluate

ITEMS = [f"Q{i}" for i in range(1, 43)]  # 42 questions, as in the hand-made case
CULTURES = ("EGY", "USA", "DEU", "JPN", "MEX", "BRA", "IND", "CHN")  # 8 cultures in the similarity rows


def _config(variant: str, max_steps: int = 24, lr: float = 1e-3) -> dict[str, Any]:
    return {
        "name": f"planted-{variant}-{max_steps}",
        "run_dir": f"runs/{variant}-{max_steps}",
        "seed": 0,
        "cultures": ["Egypt"],
        "compare": ["United States"],
        "models": {"student": "embedded"},
        "dataset": {"variant": variant},
        "train": {"max_steps": max_steps, "learning_rate": lr},
        "eval": {"styles": ["persona"], "personas": 10, "items": ITEMS},
    }


def _similarity(target_rank: int) -> dict[str, float]:
    """1-JSD similarity to each culture such that EGY has the given rank (1 = closest)."""
    others = [c for c in CULTURES if c != "EGY"]
    order = others[: target_rank - 1] + ["EGY"] + others[target_rank - 1 :]
    return {c: 0.9 - 0.01 * i for i, c in enumerate(order)}


def plant_run(
    run_dir: Path,
    cfg: dict[str, Any] | None,
    kl: dict[str, dict[str, list[float]]],
    ranks: dict[str, int] | None = None,
) -> Path:
    """A run whose metric rows hold the given per-question KL: alias -> culture -> values over ITEMS."""
    with RunStore(run_dir) as store:
        if cfg is not None:
            store.bind_config(cfg, hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest())
        for alias, by_culture in kl.items():
            for culture, vals in by_culture.items():
                per = dict(zip(ITEMS, vals, strict=True))
                mean = float(np.mean(vals))
                sd = float(np.std(vals, ddof=1))
                data = {"mean": mean, "lo": mean - sd / 3, "hi": mean + sd / 3, "per_item": per}
                store.put("metric", f"{alias}/persona/{culture}/base/kl", data)
            if ranks and alias in ranks:
                sims = _similarity(ranks[alias])
                store.put("metric", f"{alias}/persona/EGY/specificity", {"similarity": sims})
    return run_dir


def _compare(*args: str) -> Any:
    """`clca compare ARGS` in this process (typer's runner); asserts exit 0."""
    from typer.testing import CliRunner

    from clca.cli.main import app

    res = CliRunner().invoke(app, ["compare", *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res


# -- the minimum detectable effect ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "loc", "scale"),
    [(8, 0.01, 0.05), (42, -0.246, 0.4), (300, 0.0, 1.3)],  # three planted cases
)
def test_detectable_effect_equals_statsmodels(n: int, loc: float, scale: float) -> None:
    pytest.importorskip("statsmodels", reason="statsmodels is in the dev extra: pip install -e '.[dev]'")
    from statsmodels.stats.power import TTestPower

    diffs = np.random.default_rng(n).normal(loc, scale, size=n)
    sd, mde = minimum_detectable(diffs)
    assert sd == pytest.approx(float(np.std(diffs, ddof=1)), rel=1e-12)
    power = TTestPower()
    want = power.solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8, alternative="two-sided") * sd
    assert mde is not None and abs(mde - want) < 1e-6
    # and statsmodels' power at our MDE is 0.8 (its power function, not its solver)
    assert power.power(mde / sd, nobs=n, alpha=0.05, alternative="two-sided") == pytest.approx(0.8, abs=1e-9)
    assert minimum_detectable([0.1]) == (pytest.approx(float("nan"), nan_ok=True), None)
    assert detectable_effect_size(1) is None


# -- specificity: the hand-made case shape -------------------------------------------------------------
def _hand_made(root: Path) -> dict[str, Path]:
    """Base, a direct control and a uniform control (24 steps each), 42 questions, Egypt and the United States:
    the direct control moves EGY by -0.25 and USA by -0.57 (generic against base); the uniform control moves
    EGY by +0.2 and USA by -0.75, so against it the direct control is specific to Egypt."""
    rng = np.random.default_rng(0)
    base = {"EGY": rng.uniform(0.4, 0.9, 42), "USA": rng.uniform(1.1, 1.6, 42)}

    def moved(shift: dict[str, float], noise: float = 0.08) -> dict[str, list[float]]:
        return {c: list(base[c] + shift[c] + rng.normal(0, noise, 42)) for c in base}

    base_kl = {c: list(v) for c, v in base.items()}
    direct_kl = {"base": base_kl, "adapted": moved({"EGY": -0.25, "USA": -0.57})}
    direct = plant_run(root / "direct", _config("survey_direct"), direct_kl, {"base": 4, "adapted": 7})
    uniform_kl = {"base": base_kl, "adapted": moved({"EGY": 0.2, "USA": -0.75})}
    uniform = plant_run(root / "uniform", _config("survey_uniform"), uniform_kl, {"base": 4, "adapted": 8})
    return {"direct": direct, "uniform": uniform}


def test_hand_made_case_generic_against_base_specific_against_uniform(tmp_path: Path) -> None:
    runs = _hand_made(tmp_path)
    comp = build_comparison([runs["direct"], runs["uniform"]], resamples=2000, seed=0)
    assert comp.reference_arm == "uniform"  # recognised by the stored dataset.variant
    assert comp.targets == {"direct": ["EGY"], "uniform": ["EGY"]}
    by = {(s.row, s.reference, s.metric): s for s in comp.specificity}
    vs_base = by[("direct:adapted:persona", "direct:base:persona", "kl")]
    assert (vs_base.target, vs_base.comparison, vs_base.n_items) == ("EGY", "USA", 42)
    assert vs_base.did == pytest.approx(0.32, abs=0.05) and vs_base.ci_low > 0
    assert vs_base.verdict == "generic" and "USA moved significantly more" in vs_base.reading
    assert (vs_base.rank_reference, vs_base.rank_row, vs_base.cultures, vs_base.rank_change) == (4, 7, 8, 3)
    vs_arm = by[("direct:adapted:persona", "uniform:adapted:persona", "kl")]
    assert vs_arm.kind == "vs reference arm"
    assert vs_arm.did == pytest.approx(-0.45 - 0.18, abs=0.05) and vs_arm.ci_high < 0
    assert vs_arm.verdict == "specific" and vs_arm.reading.startswith("specific to EGY")
    assert vs_arm.rank_change == 7 - 8
    uni = by[("uniform:adapted:persona", "uniform:base:persona", "kl")]
    assert uni.verdict == "absent" and uni.reading.startswith("absent: EGY got significantly worse")
    assert "points toward USA" in uni.reading
    # the reference arm's own pairs against the arm are not made; the direct student's are, per culture
    arm_pairs = [p for p in comp.paired if p.kind == "vs reference arm"]
    assert {(p.row, p.culture) for p in arm_pairs if p.metric == "kl"} == {
        ("direct:adapted:persona", "EGY"),
        ("direct:adapted:persona", "USA"),
    }
    egy = next(p for p in arm_pairs if p.culture == "EGY")
    assert egy.diff == pytest.approx(-0.45, abs=0.05) and egy.reading == "significant: lower (better)"
    # --reference-arm none: only base; an unknown run: one line naming the runs
    plain = build_comparison([runs["direct"], runs["uniform"]], reference_arm="none")
    assert plain.reference_arm is None and {s.kind for s in plain.specificity} == {"adapted vs base"}
    with pytest.raises(
        ConfigError, match=r"--reference-arm 'nope': not one of the compared runs; runs: direct, uniform"
    ):
        build_comparison([runs["direct"], runs["uniform"]], reference_arm="nope")


def test_did_and_its_interval_equal_numpy(tmp_path: Path) -> None:
    """Planted: the target improves by 0.10, the comparison culture by 0.04, per question with noise."""
    rng = np.random.default_rng(5)
    base = {"EGY": rng.uniform(0.5, 1.0, 42), "USA": rng.uniform(0.5, 1.0, 42)}
    shift = {"EGY": 0.10, "USA": 0.04}
    adapted = {c: base[c] - shift[c] + rng.normal(0, 0.05, 42) for c in base}
    planted = {"base": {c: list(v) for c, v in base.items()}, "adapted": {c: list(v) for c, v in adapted.items()}}
    run = plant_run(tmp_path / "run", _config("full"), planted)
    comp = build_comparison([run], resamples=3000, seed=11)
    (s,) = [s for s in comp.specificity if s.metric == "kl"]
    d = (adapted["EGY"] - base["EGY"]) - (adapted["USA"] - base["USA"])
    assert s.did == pytest.approx(float(d.mean()), abs=1e-12)
    assert s.did == pytest.approx(-0.06, abs=0.03)
    assert s.target_diff == pytest.approx(float((adapted["EGY"] - base["EGY"]).mean()), abs=1e-12)
    assert s.comparison_diff == pytest.approx(float((adapted["USA"] - base["USA"]).mean()), abs=1e-12)
    by_key = d[[ITEMS.index(q) for q in sorted(ITEMS)]]  # the questions in key order, as the bootstrap takes them
    idx = np.random.default_rng(11).integers(0, d.size, size=(3000, d.size))
    means = by_key[idx].mean(axis=1)
    assert s.ci_low == pytest.approx(float(np.quantile(means, 0.025)), abs=1e-12)
    assert s.ci_high == pytest.approx(float(np.quantile(means, 0.975)), abs=1e-12)
    assert s.p == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)
    assert s.sd == pytest.approx(float(d.std(ddof=1)), rel=1e-12)
    # Holm: the pair's family is EGY's and USA's paired KL test and this DiD
    fam = [p.p for p in comp.paired if p.metric == "kl" and p.kind == "adapted vs base"] + [s.p]
    running, adjusted = 0.0, {}
    for i, p in enumerate(sorted(fam)):
        running = max(running, min(1.0, (len(fam) - i) * p))
        adjusted[p] = running
    assert len(fam) == 3 and s.p_holm == pytest.approx(adjusted[s.p])
    assert s.verdict == "specific"


def test_outputs_carry_detectable_effect_and_verdict(tmp_path: Path) -> None:
    runs = _hand_made(tmp_path)
    out = tmp_path / "cmp"
    r = _compare(str(runs["direct"]), str(runs["uniform"]), "--out", str(out), "--no-figures", "--resamples", "500")
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == str(out / "compare.html")
    assert any("DiD" in x and "specific to EGY" in x for x in lines)
    assert any(
        "EGY direct:adapted:persona vs uniform:adapted:persona" in x and "significant: lower" in x for x in lines
    )
    html, md = (out / "compare.html").read_text(), (out / "summary.md").read_text()
    for text in (html, md):
        assert "paired t-test" in text and "power 0.8" in text and "Specificity" in text
        assert "generic: EGY improved" in text and "specific to EGY" in text
        assert "absent: EGY got significantly worse" in text
        assert "(reference arm)" in text
    paired = pd.read_csv(out / "paired.csv")
    assert {"sd", "mde", "reading"} <= set(paired.columns) and paired["mde"].notna().all()
    spec = pd.read_csv(out / "specificity.csv")
    assert set(spec["verdict"]) == {"generic", "specific", "absent"}
    assert (spec["rank_row"] - spec["rank_reference"]).notna().any()
    tex = (out / "table_paired.tex").read_text()
    assert r"\toprule" in tex and "MDE" in tex and "power 0.8" in tex
    assert "specific" in (out / "table_specificity.tex").read_text()
    assert not list(out.glob("*.png"))  # --no-figures


def test_a_null_result_reads_no_significant_change_with_detectable(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = {"EGY": rng.uniform(0.5, 1.0, 42), "USA": rng.uniform(0.5, 1.0, 42)}
    same = {c: list(v + rng.normal(0, 0.01, 42)) for c, v in base.items()}
    run = plant_run(
        tmp_path / "null", _config("full"), {"base": {c: list(v) for c, v in base.items()}, "adapted": same}
    )
    comp = build_comparison([run], resamples=500)
    p = next(p for p in comp.paired if p.metric == "kl" and p.culture == "EGY")
    d = np.array(same["EGY"]) - base["EGY"]
    want = detectable_effect_size(42) * float(d.std(ddof=1))  # type: ignore[operator]
    assert p.reading == f"no significant change; detectable: {want:.3g}"
    (s,) = comp.specificity
    assert s.verdict == "absent"


# -- dose-response ---------------------------------------------------------------------------------------------
def test_dose_response_figure_over_max_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = {"EGY": rng.uniform(0.6, 0.8, 42), "USA": rng.uniform(1.2, 1.4, 42)}
    base_kl = {c: list(v) for c, v in base.items()}
    runs = []
    for steps, shift in ((12, 0.05), (24, 0.15), (48, 0.3)):
        adapted = {c: list(v - shift * (1 if c == "EGY" else 0.5)) for c, v in base.items()}
        cfg = {**_config("survey_direct", steps), "continue_from": f"runs/direct{steps // 2}"}  # a dose chain
        runs.append(plant_run(tmp_path / f"direct{steps}", cfg, {"base": base_kl, "adapted": adapted}))
    # another learning rate: not in the series; a lone uniform control: a series of one, not drawn
    runs.append(
        plant_run(tmp_path / "lr", _config("survey_direct", 24, lr=1e-4), {"base": base_kl, "adapted": base_kl})
    )
    runs.append(plant_run(tmp_path / "uniform", _config("survey_uniform", 24), {"base": base_kl, "adapted": base_kl}))
    out = tmp_path / "cmp"
    write_comparison(runs, out, resamples=200)
    data = pd.read_csv(out / "dose_response.csv")
    assert set(data["series"]) == {"survey_direct"} and set(data["run"]) == {"direct12", "direct24", "direct48"}
    for culture, role, factor in (("EGY", "target", 1.0), ("USA", "comparison", 0.5)):
        line = data[data["culture"] == culture].sort_values("steps")
        assert list(line["steps"]) == [0, 12, 24, 48] and set(line["role"]) == {role}
        want = [base[culture].mean() - s * factor for s in (0.0, 0.05, 0.15, 0.3)]
        assert np.allclose(line["value"], want, atol=1e-12)
        assert (line["ci_low"] <= line["value"]).all() and (line["ci_high"] >= line["value"]).all()
    # the specificity panel: DiD of KL (EGY change minus USA change) per step, 0 at 0 steps
    did = data[data["role"] == "did"].sort_values("steps")
    assert list(did["steps"]) == [0, 12, 24, 48] and set(did["culture"]) == {"EGY - USA"}
    assert np.allclose(did["value"], [0.0] + [-s * 0.5 for s in (0.05, 0.15, 0.3)], atol=1e-12)
    assert (out / "dose_response.pdf").read_bytes()[:4] == b"%PDF"
    assert (out / "dose_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "compare.html").read_text()
    assert "Dose-response: KL against training steps" in html and "48 steps" in html
    # runs of one step count make no dose series
    assert dose_series(build_comparison(runs[3:], resamples=50)) == {}


# -- issue 27: a `clca eval` run with three models ----------------------------------------------------------------
def _eval_only(run_dir: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_compare import _probs

    ev = EvalConfig(cultures=["Egypt"], compare=["United States"], styles=["persona"], personas=3, items=ITEMS[:8],
                    bootstrap=50, progress=False)  # fmt: skip
    with RunStore(run_dir) as store:
        for alias, tilt in (("base", 0.0), ("a1", 0.3), ("a2", 0.6)):
            asyncio.run(evaluate(store, MockLLM(option_probs=_probs(alias, 0, tilt)), alias, ev))
    return run_dir


def test_eval_only_run_with_three_models(tmp_path: Path) -> None:
    run = _eval_only(tmp_path / "ev")
    out = tmp_path / "cmp"
    args = [str(run), "--baseline", "ev:base:persona", "--out"]
    _compare(*args, str(out), "--no-figures")
    assert not list(out.glob("*.png")) and not list(out.glob("*.pdf"))
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["runs"][0]["dataset_variant"] is None
    assert {row["group"] for row in comp["rows"] if row["role"] == "adapted"} == {"evaluated models (no run config)"}
    assert (
        "Dataset variant: full" not in (out / "summary.md").read_text()
        and "no run config" in (out / "summary.md").read_text()
    )
    assert comp["specificity"] == []  # no target known ...
    _compare(*args, str(tmp_path / "figs"), "--target", "Egypt")
    figs = tmp_path / "figs"
    assert (figs / "kl_per_culture.png").exists()
    assert not (figs / "ablations.png").exists()  # eval-only runs are no ablation
    spec = pd.read_csv(figs / "specificity.csv")  # ... unless --target names it
    assert set(spec["row"]) == {"ev:a1:persona", "ev:a2:persona"} and set(spec["target"]) == {"EGY"}


def test_ablations_with_two_adapted_aliases_in_one_run(tmp_path: Path) -> None:
    """The TypeError of issue 27: two adapted aliases of one run shared a bar series."""
    rng = np.random.default_rng(2)
    base = {c: list(rng.uniform(0.5, 1.0, 42)) for c in ("EGY", "USA")}
    run = plant_run(tmp_path / "two", _config("full"), {"base": base, "a1": base, "a2": base})
    write_comparison([run], tmp_path / "cmp", resamples=50)
    abl = pd.read_csv(tmp_path / "cmp" / "ablations.csv")
    assert set(abl["model"]) == {"a1", "a2"} and abl["series"].nunique() == 2
