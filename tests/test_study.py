"""One study, shared generation: `reuse_from` copies the shared stages' records (zero model calls there),
refuses differing shared settings, and a study config expands into the paper's grid."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clca.config import config_hash
from clca.errors import ConfigError
from clca.pipeline import RunConfig, load_run_config, run_pipeline
from clca.reuse import SHARED_STAGES, shared_settings
from clca.store import RunStore
from clca.study import expand_study

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def _cfg(tmp_path: Path, run: str, extra: str = "") -> RunConfig:
    import yaml

    body = f"run_dir: {tmp_path / run}\ncultures: [Egypt]\nmodels: {{teacher: mock, judge: mock, annotator: mock, "
    body += "student: mock}\nroleplay: {max_turns: 3}\nintents: {episodes: all}\n"
    data = {**yaml.safe_load(body), **(yaml.safe_load(extra) or {})}  # extra replaces whole top-level keys
    return load_run_config(_write(tmp_path / f"{run}.yaml", yaml.safe_dump(data)))


def _fake_source(tmp_path: Path, *, finished: bool = True) -> RunConfig:
    """A source run as `clca run` leaves it after the shared stages (records written directly)."""
    cfg = _cfg(tmp_path, "src")
    with RunStore(cfg.run_dir) as store:
        store.bind_config(cfg.model_dump(mode="json"), config_hash(cfg, exclude={"run_dir", "cache", "name"}))
        store.put("scenario", "EGY/s1", {"x": 1})
        store.put("episode", "EGY/s1/0", {"scenario_key": "EGY/s1"})
        store.put("turn", "EGY/s1/0/t0", {"idx": 0}, parent="EGY/s1/0")
        store.fail("judgement", "EGY/s1/0", "StructuredOutputError: bad")
        store.put("intention", "EGY/s1/0/t0", {"idx": 0}, parent="EGY/s1/0")
        store.put("survey_answer", "base/persona/EGY/m0/Q1", {"a": 1})
        store.put("survey_answer", "adapted/persona/EGY/m0/Q1", {"a": 2})
        store.put("metric", "base/persona/EGY/base/kl", {"mean": 0.1})
        store.set_meta("roleplay_config", {"max_turns": 3})
        for stage in SHARED_STAGES if finished else SHARED_STAGES[:2]:
            store.set_meta(f"stage:{stage}", {"stage": stage})
        store.set_meta("stage:eval", {"stage": "eval"})
    return cfg


def test_reuse_copies_shared_records_and_base_answers_only(tmp_path: Path) -> None:
    from clca.reuse import reuse_shared

    src = _fake_source(tmp_path)
    cfg = _cfg(tmp_path, "b", f"reuse_from: {src.run_dir}\ndataset: {{variant: dialogue_only}}\n")
    with RunStore(cfg.run_dir) as store:
        copied = reuse_shared(cfg, store)
        assert store.get_meta("roleplay_config") == {"max_turns": 3}
        assert store.get("judgement", "EGY/s1/0").status == "failed"  # failures stay failures
        assert store.done("survey_answer", "base/persona/EGY/m0/Q1")  # same student and eval: base reused
        assert store.get("survey_answer", "adapted/persona/EGY/m0/Q1") is None  # the adapter differs
        assert store.count("metric", None) == 0
        assert reuse_shared(cfg, store) == {}  # idempotent on a resume
    assert copied == {"scenario": 1, "episode": 1, "turn": 1, "judgement": 1, "intention": 1, "survey_answer": 1}
    other = _cfg(tmp_path, "c", f"reuse_from: {src.run_dir}\neval: {{personas: 3}}\n")
    with RunStore(other.run_dir) as store:
        assert "survey_answer" not in reuse_shared(other, store)  # other eval settings: answers are not reused


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("roleplay: {max_turns: 4}\n", "roleplay.max_turns differs: 4 here, 3 in the source run"),
        ("models: {teacher: embedded, judge: mock, annotator: mock, student: mock}\n", "models.teacher differs"),
        ("seed: 1\n", "differs"),
        ("intents: {episodes: kept}\n", "intents.episodes differs: 'kept' here, 'all' in the source run"),
    ],
)
def test_reuse_refuses_different_shared_settings_before_any_model(tmp_path: Path, extra: str, message: str) -> None:
    src = _fake_source(tmp_path)
    cfg = _cfg(tmp_path, "b", f"reuse_from: {src.run_dir}\n{extra}")
    with pytest.raises(ConfigError, match=message) as e:
        asyncio.run(run_pipeline(cfg))
    assert "\n" not in str(e.value) and str(src.run_dir) in str(e.value)
    assert not cfg.run_dir.exists()  # refused before anything was written


def test_reuse_refuses_unfinished_or_missing_source(tmp_path: Path) -> None:
    src = _fake_source(tmp_path, finished=False)
    cfg = _cfg(tmp_path, "b", f"reuse_from: {src.run_dir}\n")
    with pytest.raises(ConfigError, match="has not finished its shared stages \\(judge, reflect, intents\\)"):
        asyncio.run(run_pipeline(cfg))
    cfg = _cfg(tmp_path, "c", f"reuse_from: {tmp_path / 'nowhere'}\n")
    with pytest.raises(ConfigError, match="is not a run directory"):
        asyncio.run(run_pipeline(cfg))


def test_paper_study_expands_to_the_papers_grid() -> None:
    runs = expand_study(ROOT / "configs" / "paper_study.yaml")
    names = [r.name for r in runs]
    assert len(runs) == 7 + 6 and names[0] == "llama-3.1-8b-full" and runs[0].reuse_from is None
    assert {n.rsplit("-", 1)[-1] for n in names if n.startswith("llama-3.1-8b")} >= {"full", "no_filter"}
    cfgs = [RunConfig.model_validate(r.config) for r in runs]
    assert {c.stage_configs()["dataset"].variant for c in cfgs} == {
        "full", "dialogue_only", "intent_only", "no_filter", "control", "full_collab", "collab_only"
    }  # fmt: skip
    assert all(c.reflect.enabled for c in cfgs)  # generated once by the first run, reused by the others
    assert len({c.models.student for c in cfgs}) == 7
    assert all(set(c.stage_configs()["eval"].styles) == {"persona", "cultural", "anthropological"} for c in cfgs)
    generator = shared_settings(cfgs[0])
    for r, c in zip(runs[1:], cfgs[1:], strict=True):
        assert r.reuse_from is not None and shared_settings(c) == generator  # every reuse is accepted
        same_student = [x.run_dir for x, y in zip(runs, cfgs, strict=True) if y.models.student == c.models.student]
        assert r.reuse_from == (same_student[0] if same_student[0] != r.run_dir else runs[0].run_dir)


def test_study_plan_cli(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    study = str(ROOT / "configs" / "paper_study.yaml")
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", "study", "plan", study],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    # the paper's students are local model folders the checkout does not hold: plan checks each run as
    # strictly as `clca config check` and names the study, the run and the key
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "run llama-3.1-8b-full: models.student: model directory" in r.stderr
    demo = ROOT / "src" / "clca" / "data" / "configs" / "demo.yaml"
    grid = "grid: {variant: {full: {dataset: {variant: full}}, no_filter: {dataset: {variant: no_filter}}}}\n"
    ok = _write(tmp_path / "ok.yaml", f"study: x\nbase: {demo}\nrun_root: runs\n{grid}")
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", "study", "plan", str(ok)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("generates") and r.stdout.count("reuses") == 1
    bad = _write(tmp_path / "s.yaml", "study: x\nbase: nowhere.yaml\nrun_root: runs\ngrid: {a: {b: {}}}\n")
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", "study", "plan", str(bad)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "config file not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# The real thing (a study of three runs on the embedded model, the shared stages reused with zero model calls,
# then `clca compare` on them) is tests/test_study_compare.py.
