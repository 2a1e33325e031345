"""Settings that link stages of one run: one discard rule for the judge's kept count, the intents and the
dataset; the no-filter variant gets intentions of every finished dialogue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clca.errors import ConfigError
from clca.pipeline import _judge, _Models, load_run_config
from clca.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, body: str):  # noqa: ANN202
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\nmodels: {{judge: mock}}\n{body}")
    return load_run_config(path)


def test_shipped_no_filter_ablation_annotates_every_dialogue() -> None:
    sc = load_run_config(ROOT / "configs" / "ablation_no_filter.yaml").stage_configs()
    assert sc["dataset"].variant == "no_filter"
    assert sc["intents"].episodes == "all"  # inherited `kept` from paper.yaml before: no intention rows


def test_no_filter_defaults_to_all_and_refuses_explicit_kept(tmp_path: Path) -> None:
    assert _cfg(tmp_path, "dataset: {variant: no_filter}\n").stage_configs()["intents"].episodes == "all"
    assert _cfg(tmp_path, "dataset: {variant: full}\n").stage_configs()["intents"].episodes == "kept"
    with pytest.raises(ConfigError, match="intents.episodes.*no_filter.*set intents.episodes: all") as e:
        _cfg(tmp_path, "intents: {episodes: kept}\ndataset: {variant: no_filter}\n")
    assert "\n" not in str(e.value)


def test_one_discard_rule_per_run(tmp_path: Path) -> None:
    sc = _cfg(tmp_path, "dataset: {judge_rule: {quality_bad: [very_confident]}}\n").stage_configs()
    assert sc["intents"].rule.quality_bad == ["very_confident"]
    assert sc["dataset"].judge_rule["quality_bad"] == ["very_confident"]
    sc = _cfg(tmp_path, "intents: {rule: {meta_not_aligned: []}}\n").stage_configs()
    assert sc["dataset"].judge_rule["meta_not_aligned"] == []
    with pytest.raises(ConfigError, match=r"dataset.judge_rule and intents.rule differ \(quality_bad"):
        _cfg(tmp_path, "intents: {rule: {quality_bad: []}}\ndataset: {judge_rule: {quality_bad: [confident]}}\n")


def _verdict(label: str, confidence: str) -> dict[str, str]:
    return {"reasoning": "r", "critique": "c", "label": label, "confidence": confidence}


def test_judge_stage_kept_count_follows_the_configured_rule(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "dataset: {judge_rule: {quality_bad: [not_sure, confident, very_confident]}}\n")
    from clca.scenarios import load_seeds

    seed = load_seeds()[0].model_copy(update={"culture": "EGY"})
    with RunStore(tmp_path / "run") as store:
        store.put("scenario", "EGY/seed-001", seed.model_dump(mode="json"))
        for key, quality in (("EGY/seed-001/s0", "good"), ("EGY/seed-001/s1", "bad")):
            store.put("episode", key, {"scenario_key": "EGY/seed-001"})
            store.put("judgement", key, {"culture": _verdict("aligned", "confident"),
                                         "quality": _verdict(quality, "not_sure"),
                                         "meta": _verdict("aligned", "confident")})  # fmt: skip
        models = _Models(False)
        detail = asyncio.run(_judge(cfg, store, models))
        assert models.calls() == 0  # everything judged already
    assert "kept 1 of 2" in detail  # the default rule (the old count) keeps both


def test_report_uses_the_same_rule_and_no_judge_discard_key(tmp_path: Path) -> None:
    from clca.report._data import RULE_PLACES

    assert ("judge", "discard") not in RULE_PLACES
    with pytest.raises(ConfigError, match="judge.discard: unknown key"):
        _cfg(tmp_path, "judge: {discard: {quality_bad: []}}\n")
    assert "`judge.discard`" not in (ROOT / "docs" / "report.md").read_text()
