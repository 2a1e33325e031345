"""The Inglehart-Welzel cultural map: composite indices, country positions, the projection, models placed on
the map (real evaluate + store with a scripted backend), the report's figure and `clca compare`'s paired
distances; real respondent rows and Tao et al.'s GPT-4 answers from ../shared/data."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clca.llm._mock import MockLLM
from clca.records import METRIC, map_key, split_map_key
from clca.report import write_report
from clca.report._compare_render import write_comparison
from clca.report._map import MapData, MapPoint, map_svg
from clca.store import RunStore
from clca.wvs import EvalConfig, evaluate, load_reference
from clca.wvs._iwmap import (
    CODES,
    ZONES,
    axis_index,
    calibrate,
    expected_values,
    factor_positions,
    index_offset,
    index_weights,
    published_positions,
    respondent_values,
    vector,
    weighted_means,
    y002,
    y003,
)
from clca.wvs._iwplace import build_map, survey_means
from clca.wvs._questionnaire import ITEM_SETS, bundled_with_sets

ROOT = Path(__file__).resolve().parents[1]


def test_composite_indices_on_hand_made_respondents() -> None:
    # Y002 (Q154/Q155: 1 order, 2 more say, 3 prices, 4 free speech)
    assert y002(1, 3) == y002(3, 1) == 1.0  # materialist
    assert y002(2, 4) == y002(4, 2) == 3.0  # post-materialist
    assert y002(1, 2) == y002(4, 3) == 2.0  # mixed
    assert y002(1, 1) is None and y002(None, 2) is None
    # Y003: (independence + determination) - (religious faith + obedience), 1 = mentioned
    assert y003(1, 1, 2, 2) == 2.0
    assert y003(2, 2, 1, 1) == -2.0
    assert y003(1, 2, 1, 2) == 0.0
    assert y003(1, 1, 1, 2) == 1.0
    assert y003(1, None, 1, 1) is None
    a = {"Q154": 2, "Q155": 4, "Q8": 1, "Q14": 2, "Q15": 1, "Q17": 1, "Q164": 7, "Q46": 2, "Q254": None}
    vals = respondent_values(a)
    assert vals == {"Y002": 3.0, "Y003": -1.0, "F063": 7.0, "A008": 2.0}
    # three respondents with weights 1, 1, 2: hand-computed weighted means
    rows = [
        (respondent_values({"Q154": 1, "Q155": 3, "Q8": 1, "Q14": 1, "Q15": 2, "Q17": 2}), 1.0),  # Y002 1, Y003 2
        (respondent_values({"Q154": 2, "Q155": 1, "Q8": 2, "Q14": 2, "Q15": 1, "Q17": 2}), 1.0),  # 2, -1
        (respondent_values({"Q154": 4, "Q155": 2, "Q8": 1, "Q14": 2, "Q15": 1, "Q17": 1}), 2.0),  # 3, -1
    ]
    m = weighted_means(rows)
    assert m["Y002"] == pytest.approx((1 + 2 + 2 * 3) / 4)
    assert m["Y003"] == pytest.approx((2 - 1 - 2) / 4)
    # a sure answer distribution gives the respondent's value; Y003 from mention probabilities is linear
    sure = {
        q: ([1, 2], [1.0, 0.0] if c == 1 else [0.0, 1.0]) for q, c in {"Q8": 1, "Q14": 1, "Q15": 2, "Q17": 1}.items()
    }
    sure |= {"Q154": ([1, 2, 3, 4], [0, 1, 0, 0]), "Q155": ([1, 2, 3, 4], [0, 0, 0, 1])}
    assert expected_values(sure) == {"Y003": 1.0, "Y002": 3.0}
    half = {q: ([1, 2], [0.5, 0.5]) for q in ("Q8", "Q14", "Q15", "Q17")}
    assert expected_values(half)["Y003"] == pytest.approx(0.0)
    # Q154 sure 'order'; Q155 half 'order' half 'prices': the second choice cannot repeat the first -> prices
    ev = expected_values({"Q154": ([1, 2, 3, 4], [1, 0, 0, 0]), "Q155": ([1, 2, 3, 4], [0.5, 0, 0.5, 0])})
    assert ev["Y002"] == pytest.approx(1.0)


def test_iw10_item_set_has_every_map_question() -> None:
    q, ids = bundled_with_sets(["iw10"])
    sel = q.select(ids)
    assert sel.ids == list(ITEM_SETS["iw10"])
    assert sel.get("Q164").codes == list(range(1, 11)) and sel.get("Q154").kind == "categorical"
    both = bundled_with_sets(["wvs44", "iw10"])
    assert len(both[0].select(both[1])) == 44 + 9
    assert sel.get("Q254").is_not_answer(label="I am not [nationality]") and sel.get("Q254").is_not_answer(code=5)


def test_usa_and_egypt_respondents_fall_on_the_published_sides(shared_data: Path) -> None:
    q, ids = bundled_with_sets(["iw10"])
    d = shared_data / "cultural-trends"
    means = survey_means([str(d / "us_wvs_wave7_v7_n303.csv"), str(d / "eg_wvs_wave7_v7_n303.csv")], q.select(ids))
    usa, egy = means["USA"], means["EGY"]
    assert np.isnan(egy[CODES.index("F118")])  # WVS-7 Egypt did not ask Q182 (homosexuality)
    assert not np.isnan(usa).any()
    # the uncalibrated axis indices (no published position involved): the US is more secular and more
    # self-expressive than Egypt, as the published map places them
    iu, ie = axis_index(usa), axis_index(egy)
    pub = published_positions()
    assert (pub["USA"].position[0] > pub["EGY"].position[0]) and (pub["USA"].position[1] > pub["EGY"].position[1])
    assert iu[0] > ie[0] and iu[1] > ie[1]
    # and item by item where the cultures differ most
    assert egy[CODES.index("F063")] > 9.5 > usa[CODES.index("F063")]
    assert usa[CODES.index("Y002")] > egy[CODES.index("Y002")]


def test_calibration_recovers_a_planted_linear_map() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 4, size=(30, 10))
    w, b = rng.normal(size=(10, 2)), rng.normal(size=2)
    names = [f"C{i:02d}" for i in range(30)]
    proj = calibrate({n: x[i] for i, n in enumerate(names)}, {n: x[i] @ w + b for i, n in enumerate(names)})
    assert proj.method == "linear"
    np.testing.assert_allclose(proj.weights, w, atol=1e-9)
    np.testing.assert_allclose(proj.intercept, b, atol=1e-9)
    assert proj.loo_error is not None and proj.loo_error < 1e-9
    # the index method: a planted scale and offset per axis of the fixed axis indices
    y = (x @ index_weights() + index_offset()) * np.array([2.5, -1.5]) + np.array([0.3, 0.7])
    small = calibrate({n: x[i] for i, n in enumerate(names[:5])}, {n: y[i] for i, n in enumerate(names[:5])})
    assert small.method == "index"
    np.testing.assert_allclose(small.project(x[10:]), y[10:], atol=1e-9)
    assert small.loo_error is not None and small.loo_error < 1e-9


def test_factor_positions_find_the_two_planted_dimensions() -> None:
    rng = np.random.default_rng(7)
    n = 60
    s, t = rng.normal(size=n), rng.normal(size=n)
    cols = []
    for k, code in enumerate(CODES):
        axis = s if k < 5 else t  # CODES: five secular-axis variables, then five self-expression ones
        sign = -1.0 if code in ("F063", "A008", "E025", "A165") else 1.0
        cols.append(5 + sign * (0.9 * axis) + 0.25 * rng.normal(size=n))
    x = np.column_stack(cols)
    sol = factor_positions({f"C{i}": x[i] for i in range(n)})
    pos = np.array([sol.positions[f"C{i}"] for i in range(n)])
    assert np.corrcoef(pos[:, 0], s)[0, 1] > 0.97 and np.corrcoef(pos[:, 1], t)[0, 1] > 0.97
    np.testing.assert_allclose(pos.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(pos.std(axis=0, ddof=1), 1, atol=1e-9)
    np.testing.assert_allclose(sol.projection.project(x), pos, atol=1e-9)  # the linear map gives the positions
    assert sol.loadings[CODES.index("F063"), 0] < -0.8 and sol.loadings[CODES.index("Y002"), 1] > 0.8


def test_published_positions_are_bundled() -> None:
    pub = published_positions()
    assert len(pub) == 115 and {c.zone for c in pub.values()} == set(ZONES)
    assert pub["EGY"].position == (-0.5936, -1.9862) and pub["USA"].zone == "English-Speaking"


def _point(model: str, role: str, x: float, y: float, cov: list[list[float]]) -> MapPoint:
    return MapPoint(run="r", model=model, style="persona", culture="EGY", role=role, x=x, y=y, cov=cov,
                    distance=1.0, nearest="EGY")  # fmt: skip


def test_map_svg_draws_an_ellipse_per_persona_ci_and_an_arrow_base_to_adapted() -> None:
    pub = published_positions()
    data = MapData(
        points=[
            _point("base", "base", 0.5, 0.5, [[0.04, 0.01], [0.01, 0.02]]),
            _point("clca", "adapted", -0.2, -1.0, [[0.02, 0.0], [0.0, 0.03]]),
            _point("flat", "adapted", 0.0, 0.0, [[0.0, 0.0], [0.0, 0.0]]),  # one shared prompt: no CI
        ],
        countries=dict(pub),
    )
    svg = str(map_svg(data, ["EGY", "USA"], ["EGY"]))
    assert svg.count("<ellipse") == 2
    assert svg.count('class="shift-arrow"') == 2  # base -> clca, base -> flat
    assert svg.count('class="country"') == len(pub)
    assert svg.count('class="culture-label"') == 2 and ">Egypt</text>" in svg
    assert svg.count('class="model-point"') == 3


def test_tao_gpt4_answers_through_the_projection(shared_data: Path) -> None:
    spec = importlib.util.spec_from_file_location("iwmap_tao", ROOT / "benchmarks" / "iwmap_tao.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.agreement(shared_data / "ethogpt-db")
    assert len(res["countries"]) == 8
    # measured: secular 0.881, self-expression 0.887 (README, docs/cultural-map.md)
    assert res["secular"]["spearman"] >= 0.8 and res["selfexpr"]["spearman"] >= 0.8
    assert res["secular"]["mad"] < 1.5 and res["selfexpr"]["mad"] < 1.5


def _leaning(shift: float):
    """A scripted backend: option probabilities lean to the first or last option by `shift`, plus a
    per-prompt wobble (so personas differ and the persona bootstrap has spread)."""

    def probs(messages: Sequence[Any], options: Sequence[str]) -> list[float]:
        h = int(hashlib.sha256(repr(messages).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        k = len(options)
        w = np.exp(shift * np.linspace(-1, 1, k) + 0.8 * np.sin(np.arange(k) * 7.0 + 6 * h))
        return list(w / w.sum())

    return probs


def _evaluate(run: Path, alias: str, shift: float) -> Any:
    cfg = EvalConfig(cultures=["Egypt"], compare=["United States"], items=["iw10"], personas=5, bootstrap=50,
                     progress=False)  # fmt: skip
    with RunStore(run) as store:
        return asyncio.run(evaluate(store, MockLLM(option_probs=_leaning(shift)), alias, cfg))


@pytest.mark.slow  # evaluate x2, report and compare (the compare's exact Wilcoxon tests take most of it)
def test_models_placed_on_the_map_reported_and_compared(tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = _evaluate(run, "base", 1.5)
    _evaluate(run, "adapted", -1.5)
    assert "cultural map: index projection from 2 countries" in base.summary
    dist = base.value("EGY", "persona", "iw_distance", theme="cultural map")
    assert dist.lo < dist.mean < dist.hi and dist.n == 5
    with RunStore(run, lock=False) as store:
        keys = {split_map_key(r.key) for r in store.iter(METRIC)} - {None}
        assert keys == {(a, "persona", c) for a in ("base", "adapted") for c in ("EGY", "USA")}
        row = store.get(METRIC, map_key("base", "persona", "EGY"))
        assert row is not None
        d = row.data
    assert d["distance"] == pytest.approx(dist.mean) and len(d["per_persona"]) == 5
    assert d["distances"]["EGY"] == pytest.approx(d["distance"]) and d["nearest"] in published_positions()
    mean = np.mean(list(d["per_persona"].values()), axis=0)
    assert [d["x"], d["y"]] == pytest.approx(list(mean))
    # the report: the map as inline SVG, one ellipse per (model, culture) and an arrow per culture
    paths = write_report(run)
    html = paths.html.read_text(encoding="utf-8")
    svg = html[html.index('<svg xmlns="http://www.w3.org/2000/svg" class="chart iwmap"') :]
    svg = svg[: svg.index("</svg>")]
    assert svg.count("<ellipse") == 4 and svg.count('class="shift-arrow"') == 2
    assert (paths.html.parent / "cultural_map.csv").is_file()
    # clca compare: paired distance-to-target differences and the figure's PDF/PNG/CSV
    out = tmp_path / "cmp"
    write_comparison([run], out, resamples=200)
    import json

    comp = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    paired = [p for p in comp["paired"] if p["metric"] == "iw_distance"]
    assert {p["culture"] for p in paired} == {"EGY", "USA"} and all(p["unit"] == "personas" for p in paired)
    for p in paired:
        assert p["ci_low"] <= p["diff"] <= p["ci_high"] and p["n"] == 5
    assert {f.name for f in out.iterdir()} >= {"cultural_map.pdf", "cultural_map.png", "cultural_map.csv"}
    assert re.search(r"iw_distance", (out / "compare.html").read_text(encoding="utf-8"))


def test_default_map_is_calibrated_on_the_bundled_reference() -> None:
    cmap = build_map(load_reference())
    assert cmap.projection.countries == ["EGY", "USA"] and cmap.projection.method == "index"
    pub = published_positions()
    ref = load_reference()
    for c in ("EGY", "USA"):
        dists = {q: (d.codes, d.shares) for q, d in ref.countries[c].items.items()}
        np.testing.assert_allclose(cmap.projection.project(vector(expected_values(dists))), pub[c].position, atol=1e-9)


def test_leave_one_country_out_error_of_a_calibration_on_eight_real_countries(shared_data: Path) -> None:
    """Real respondent files with the map's questions for eight countries (six Arab countries asked four of the
    ten, Egypt nine, the US all ten): the calibration's leave-one-country-out error is computed and beats
    predicting each country at the others' mean position (the figure docs/cultural-map.md quotes)."""
    q, _ = bundled_with_sets(["wvs44", "iw10"])
    files = [shared_data / "culturepark" / "Arabic.csv", *sorted((shared_data / "cultural-trends").glob("*_n303.csv"))]
    ref = load_reference()
    cmap = build_map(ref, [str(f) for f in files], q)
    proj = cmap.projection
    assert cmap.source == "published" and proj.method == "index"
    assert proj.countries == ["EGY", "IRQ", "JOR", "LBN", "LBY", "MAR", "TUN", "USA"]
    pub = {c: np.array(published_positions()[c].position) for c in proj.countries}
    y = np.array([pub[c] for c in proj.countries])
    keep = ~np.eye(len(y), dtype=bool)
    baseline = float(np.mean([np.linalg.norm(y[keep[k]].mean(axis=0) - y[k]) for k in range(len(y))]))
    assert proj.loo_error is not None and proj.loo_error < 0.6 * baseline
    assert f"{proj.loo_error:.3f}" in proj.describe()
    print(f"leave-one-country-out error {proj.loo_error:.3f} (mean-position baseline {baseline:.3f})")


def test_a_respondent_file_with_ten_countries_gets_its_own_factor_solution(tmp_path: Path) -> None:
    """--survey with 10+ countries holding the ten variables: positions from the file's own factor analysis
    (not the published map); the country planted most secular (God unimportant, abortion justifiable) is
    placed furthest right, and the map row keeps the file's positions for the report's background."""
    import csv

    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    countries = ["USA", "EGY", "DEU", "JPN", "BRA", "IND", "NGA", "SWE", "RUS", "CHN", "MEX", "TUR"]
    secular = dict(zip(countries, np.linspace(-1.5, 1.5, len(countries)), strict=True))
    q, ids = bundled_with_sets(["iw10"])
    q = q.select(ids)
    # direction of each secular-axis question's code as a country is more secular (child qualities: 1 = named)
    planted = {"Q164": -1, "Q184": 1, "Q254": 1, "Q45": 1, "Q8": -1, "Q14": -1, "Q15": 1, "Q17": 1}
    path = tmp_path / "wvs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["B_COUNTRY_ALPHA", "W_WEIGHT", *ids])
        for c in countries:
            for _ in range(60):
                row: list[Any] = [c, 1.0]
                for it in ids:
                    codes = q.get(it).codes
                    if it in planted:  # the secular axis's questions follow the country's planted level
                        k, mid = len(codes), (len(codes) + 1) / 2
                        shift = planted[it] * secular[c] * (k - 1) / 3
                        row.append(int(np.clip(round(mid + shift + 0.7 * rng.normal()), 1, k)))
                    else:
                        row.append(int(rng.choice(codes)))
                w.writerow(row)
    cmap = build_map(load_reference(), [str(path)], q)
    assert cmap.source == "survey" and cmap.projection.method == "factor" and len(cmap.countries) == 12
    xs = [cmap.countries[c].position[0] for c in countries]
    assert spearmanr(xs, [secular[c] for c in countries]).statistic > 0.9
    assert max(countries, key=lambda c: cmap.countries[c].position[0]) == "TUR"
    assert cmap.summary()["positions"]["TUR"] == list(cmap.countries["TUR"].position)
