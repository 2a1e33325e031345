"""evaluate / compare_models / clca eval: stored answers, resumption, metrics, specificity, CLI."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clca.cli.main import app
from clca.errors import ConfigError
from clca.llm import MockLLM
from clca.store import RunStore
from clca.wvs import (
    EvalConfig,
    compare_models,
    evaluate,
    format_shifts,
    format_table,
    js_distance,
    kl_divergence,
    load_reference,
)

ITEMS = ["Q1", "Q6", "Q29", "Q45"]


def _peaked(target_code_index: int):  # noqa: ANN202
    def probs(_messages, options):  # noqa: ANN001, ANN202
        k = min(target_code_index, len(options) - 1)
        return [0.7 if i == k else 0.3 / (len(options) - 1) for i in range(len(options))]

    return probs


def test_evaluate_stores_answers_and_metrics(tmp_path: Path) -> None:
    llm = MockLLM(option_probs=_peaked(0))
    cfg = EvalConfig(cultures=["Egypt"], compare=["United States"], styles=["persona", "cultural"], personas=3,
                     items=ITEMS, bootstrap=200, progress=False)  # fmt: skip
    with RunStore(tmp_path / "run") as store:
        res = asyncio.run(evaluate(store, llm, "base", cfg))
        # persona style: 3 personas x 4 items per culture; cultural: one shared prompt per item
        assert store.count("survey_answer") == 2 * (3 * 4 + 4)
        assert store.done("survey_answer", "base/persona/EGY/m0000/Q1")
        assert store.done("survey_answer", "base/cultural/USA/all/Q45")
        calls = len(llm.calls)
        again = asyncio.run(evaluate(store, llm, "base", cfg))  # resumes: nothing asked twice
        assert len(llm.calls) == calls and "0 done, 32 already done" in again.summary
        assert store.get("metric", "base/persona/EGY/base/kl") is not None
    kl = res.value("EGY", "persona", "kl")
    # the model puts 0.7 on option 1 of every item: check KL against the reference by hand
    ref = load_reference()
    expected = []
    for iid in ITEMS:
        s = ref.countries["EGY"].items[iid].shares
        p = [0.7] + [0.3 / (len(s) - 1)] * (len(s) - 1) + [0.0]
        expected.append(kl_divergence(p, s, 1e-3))
    assert kl.mean == pytest.approx(sum(expected) / len(expected))
    assert kl.lo <= kl.mean <= kl.hi and kl.n == 4
    jsd = res.value("USA", "cultural", "jsd")
    assert 0.0 <= jsd.lo <= jsd.mean <= jsd.hi <= 1.0
    assert res.value("EGY", "persona", "similarity").mean == pytest.approx(1 - res.value("EGY", "persona", "jsd").mean)
    assert res.value("EGY", "persona", "w1", theme="importance in life").n == 2
    # marginal personas carry no real answers -> no individual accuracy
    assert not [r for r in res.rows if r.metric == "accuracy"]
    sims = res.specificity["persona"]["EGY"]
    assert set(sims) >= {"EGY", "USA", "JOR"} and list(sims.values()) == sorted(sims.values(), reverse=True)
    p_q1 = [0.7, 0.1, 0.1, 0.1, 0.0]
    assert sims["USA"] == pytest.approx(
        sum(1 - js_distance(p, ref.countries["USA"].items[i].shares)
            for i, p in zip(ITEMS, [p_q1, p_q1, p_q1, [0.7, 0.15, 0.15, 0.0]], strict=True)) / 4
    )  # fmt: skip
    table = format_table(res)
    assert "EGY" in table and "KL(model||survey)" in table and "[" in table and "Specificity" in table


def test_compare_models_shift(tmp_path: Path) -> None:
    cfg = EvalConfig(cultures=["EGY"], compare=["USA"], personas=2, items=ITEMS, bootstrap=50, progress=False)
    with RunStore(tmp_path / "run") as store:
        asyncio.run(evaluate(store, MockLLM(option_probs=_peaked(3)), "base", cfg))
        asyncio.run(evaluate(store, MockLLM(option_probs=_peaked(0)), "adapted", cfg))
        (shift,) = compare_models(store, "base", "adapted", "Egypt")
        with pytest.raises(ConfigError, match="--adapted 'nothing': no evaluation of that alias.*aliases: adapted"):
            compare_models(store, "base", "nothing", "Egypt", styles=["persona"])
    # Egyptians answer "very important"/"agree strongly" a lot: moving mass to option 1 moves towards Egypt
    assert shift.shift_target == pytest.approx(shift.adapted_target - shift.base_target)
    assert shift.shift_target > 0
    assert shift.shift_reference is not None
    assert "shift→target" in format_shifts([shift], "base", "adapted")


def test_variants_and_generate_mode_with_real_personas(shared_data: Path, tmp_path: Path) -> None:
    survey = [str(shared_data / "cultural-trends" / "eg_wvs_wave7_v7_n303.csv")]
    llm = MockLLM(["1", "2", "refuse", "1"])
    cfg = EvalConfig(cultures=["Egypt"], personas=4, items=["Q1", "Q29"], mode="generate", samples=4,
                     variants=["base", "perm1", "para"], survey=survey, bootstrap=20, progress=False)  # fmt: skip
    with RunStore(tmp_path / "run") as store:
        res = asyncio.run(evaluate(store, llm, "m", cfg))
        keys = [r.key for r in store.iter("survey_answer")]
    assert (
        len(keys) == 4 * 2 * 3 and any(k.endswith("/Q1/perm1") for k in keys) and any(k.endswith("/para") for k in keys)
    )
    acc = res.value("EGY", "persona", "accuracy")
    assert 0.0 <= acc.mean <= 1.0 and acc.n == 2
    safe = res.value("EGY", "persona", "safeguarded")
    assert safe.mean == pytest.approx(0.25)  # one reply in four is unparseable
    spread = res.value("EGY", "persona", "kl", variant="spread")
    assert spread.n == 3 and spread.lo <= spread.hi


def test_unknown_culture_and_variant_are_config_errors(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run") as store:
        cfg = EvalConfig(cultures=["EGY"], items=["Q1"], personas=1, progress=False)
        asyncio.run(evaluate(store, MockLLM(), "m", cfg))
        with pytest.raises(ConfigError, match="logprobs-mode answers of 'm'"):
            asyncio.run(evaluate(store, MockLLM(), "m", cfg.model_copy(update={"mode": "generate"})))
        with pytest.raises(ConfigError, match="no survey answers for JPN"):
            asyncio.run(evaluate(store, MockLLM(), "m", EvalConfig(cultures=["Japan"], progress=False)))
        with pytest.raises(ConfigError, match="unknown variant"):
            asyncio.run(evaluate(store, MockLLM(), "m", EvalConfig(cultures=["EGY"], variants=["x"], progress=False)))


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from clca.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "mock", "--culture", "Atlantis", "--run-dir", str(tmp_path / "r"), "--quiet"])
    assert e.value.code == 2
    res = CliRunner().invoke(app, ["eval", "--model", "mock", "--culture", "EGY", "--style", "bogus"])
    assert res.exit_code != 0


@pytest.mark.slow
def test_clca_eval_on_embedded_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["eval", "--model", "embedded", "--culture", "Egypt", "--compare", "United States", "--personas", "1",
            "--item", "Q1", "--item", "Q44", "--style", "persona", "--style", "cultural", "--run-dir", str(run),
            "--quiet", "--bootstrap", "100"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "EGY" in res.output and "USA" in res.output and "mode: logprobs" in res.output
    with RunStore(run) as store:
        assert store.count("survey_answer") == 8 and store.count("survey_answer", status="failed") == 0
        for rec in store.iter("survey_answer"):
            assert sum(rec.data["probs"]) == pytest.approx(1.0, abs=1e-6)
        kl = store.get("metric", "embedded/persona/EGY/base/kl").data
        assert kl["mean"] >= 0 and not math.isnan(kl["mean"])


def test_shared_prompt_styles_get_as_many_samples_as_all_personas(tmp_path: Path) -> None:
    """generate mode: the cultural style's one prompt per item gets personas x samples answers, the same total
    as the persona style (before the fix it got `samples`, i.e. 1 in the paper's config)."""
    cfg = EvalConfig(cultures=["Egypt"], compare=[], styles=["persona", "cultural", "anthropological"], personas=5,
                     items=["Q1", "Q29"], mode="generate", samples=2, bootstrap=0, progress=False)  # fmt: skip
    with RunStore(tmp_path / "run") as store:
        asyncio.run(evaluate(store, MockLLM(["2"]), "base", cfg))
        per_item: dict[tuple[str, str], int] = {}
        for rec in store.iter("survey_answer"):
            k = (rec.data["style"], rec.data["item"])
            per_item[k] = per_item.get(k, 0) + len(rec.data["samples"])
    assert per_item == {(s, i): 10 for s in ("persona", "cultural", "anthropological") for i in ("Q1", "Q29")}
    explicit = cfg.model_copy(update={"shared_samples": 3})
    with RunStore(tmp_path / "run2") as store:
        asyncio.run(evaluate(store, MockLLM(["2"]), "base", explicit))
        assert len(store.get("survey_answer", "base/cultural/EGY/all/Q1").data["samples"]) == 3
