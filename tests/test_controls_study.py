"""configs/controls_study.yaml (issue 26): its runs, the dose-response chain (`continue_from`) and its refusals,
and `clca config check` of a study's runs (real configs, real SQLite run stores, the real CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clca.dataset import survey_rows
from clca.errors import ConfigError
from clca.pipeline import RunConfig, load_run_config
from clca.records import CONFIG
from clca.reuse import continue_checkpoint, shared_settings
from clca.store import RunStore
from clca.study import expand_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "configs" / "controls_study.yaml"


def test_controls_study_has_every_arm_and_the_dose_chain() -> None:
    runs = expand_study(STUDY)
    cfgs = {r.name: RunConfig.model_validate(r.config) for r in runs}
    variants = {n: c.dataset.variant for n, c in cfgs.items()}
    assert variants["clca"] == "full" and runs[0].name == "clca" and runs[0].reuse_from is None
    assert {"survey_direct", "survey_transfer", "survey_other", "survey_shuffled", "survey_uniform"} <= set(
        variants.values()
    )
    generator = shared_settings(cfgs["clca"])
    assert all(shared_settings(c) == generator for c in cfgs.values())  # every arm reuses the generation
    c = cfgs["clca"]
    assert c.scenarios.n >= 24 and c.roleplay.samples >= 2 and c.dataset.judge_rule is not None
    assert c.cultures == ["Egypt"] and c.compare == ["United States"] and c.eval.styles == ["persona"]
    # the dose: direct at 12, 24, 48, 96 steps, each continuing the previous run; the step count is in the config
    dose = {n: c for n, c in cfgs.items() if c.dataset.variant == "survey_direct"}
    assert sorted(c.train.max_steps for c in dose.values()) == [12, 24, 48, 96]
    by_steps = {c.train.max_steps: c for c in dose.values()}
    for shorter, longer in ((12, 24), (24, 48), (48, 96)):
        assert Path(by_steps[longer].continue_from) == Path(by_steps[shorter].run_dir)
        assert by_steps[shorter].train.max_steps % by_steps[shorter].train.save_steps == 0  # its last step is saved
    assert by_steps[12].continue_from is None
    assert {c.train.lr_scheduler_type for c in cfgs.values()} == {"constant"}  # the chain equals fresh runs
    for name, c in cfgs.items():  # every control arm's rows can be built from the run's own eval settings
        if c.dataset.variant.startswith("survey_"):
            rows, _ = survey_rows(c.dataset, c.eval)
            assert len(rows) == c.dataset.control_rows, name
            if c.dataset.variant == "survey_transfer":
                assert not {r["item"] for r in rows} & set(c.eval.items or [])
    order = [r.name for r in runs]
    for c in dose.values():  # a run continues only from one that runs before it
        if c.continue_from is not None:
            assert order.index(Path(c.continue_from).name) < order.index(Path(c.run_dir).name)


def test_controls_survey_study_runs_the_control_arms_as_the_full_study_does() -> None:
    """configs/controls_survey_study.yaml (the README's measured table): the full study's control arms, nothing
    else; each arm's training and evaluation settings are the full study's (only the generation size, which
    no control arm reads, and the run directories differ)."""
    full = {r.name: RunConfig.model_validate(r.config) for r in expand_study(STUDY)}
    survey = {
        r.name: RunConfig.model_validate(r.config)
        for r in expand_study(ROOT / "configs" / "controls_survey_study.yaml")
    }
    assert set(survey) == set(full) - {"clca"}
    for name, c in survey.items():
        f = full[name]
        assert c.dataset.model_dump(exclude={"judge_rule"}) == f.dataset.model_dump(exclude={"judge_rule"}), name
        assert c.train == f.train and c.eval == f.eval and c.seed == f.seed, name
        assert (c.continue_from is None) == (f.continue_from is None) and str(c.run_dir).startswith(
            "runs/controls-survey/"
        )
        assert c.scenarios.n == 2 and c.roleplay.samples == 1


def test_config_check_and_plan_list_every_run_of_the_controls_study(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    n = len(expand_study(STUDY))
    for cmd in (["config", "check"], ["study", "plan"]):
        r = subprocess.run([sys.executable, "-m", "clca.cli.main", *cmd, str(STUDY)],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        checked = f"{STUDY}: ok (a study of {n} runs, each checked; list them with `clca study plan`)"
        assert len(lines) == n if cmd[0] == "study" else lines == [checked]
    assert r.stdout.count("reuses runs/controls/clca") == len(expand_study(STUDY)) - 1


def _run(tmp_path: Path, name: str, steps: int, *, source: Path | None = None, **over: object) -> RunConfig:
    data = yaml.safe_load((ROOT / "configs" / "controls.yaml").read_text())
    data["run_dir"] = str(tmp_path / name)
    data["dataset"]["variant"] = "survey_direct"
    data["train"]["max_steps"] = steps
    for key, value in over.items():
        section, field = key.split("__")
        data[section][field] = value
    if source is not None:
        data["continue_from"] = str(source)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_run_config(path)


def _finished(cfg: RunConfig, steps: int, *, checkpoint: bool = True) -> Path:
    """A run directory as the train stage leaves it: the stored config, train_result.json, checkpoints."""
    with RunStore(cfg.run_dir) as st:
        st.set_meta("config", cfg.model_dump(mode="json"))
    adapter = Path(cfg.run_dir) / "adapter"
    (adapter / "checkpoints").mkdir(parents=True)
    (adapter / "train_result.json").write_text(json.dumps({"global_step": steps}))
    if checkpoint:
        ckpt = adapter / "checkpoints" / f"checkpoint-{steps}"
        ckpt.mkdir()
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": steps}))
    return Path(cfg.run_dir)


def test_continue_from_finds_the_last_checkpoint_of_the_shorter_run(tmp_path: Path) -> None:
    src = _finished(_run(tmp_path, "d12", 12), 12)
    longer = _run(tmp_path, "d24", 24, source=src)
    assert continue_checkpoint(longer) == str(src / "adapter" / "checkpoints" / "checkpoint-12")


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"train__learning_rate": 0.002}, "train.learning_rate differs"),
        ({"dataset__variant": "survey_uniform"}, "dataset.variant differs"),
        ({"eval__personas": 3}, "eval.personas differs"),
    ],
)
def test_continue_from_refuses_other_data_or_training(tmp_path: Path, over: dict, message: str) -> None:
    src = _finished(_run(tmp_path, "d12", 12), 12)
    with pytest.raises(ConfigError, match=message):
        continue_checkpoint(_run(tmp_path, "d24", 24, source=src, **over))


def test_continue_from_refuses_unfinished_longer_or_unsaved_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        continue_checkpoint(_run(tmp_path, "a", 24, source=tmp_path / "nowhere"))
    src = _run(tmp_path, "b12", 12)
    with RunStore(src.run_dir) as st:
        st.set_meta("config", src.model_dump(mode="json"))
    with pytest.raises(ConfigError, match="has not finished training"):
        continue_checkpoint(_run(tmp_path, "b24", 24, source=Path(src.run_dir)))
    done = _finished(_run(tmp_path, "c24", 24), 24)
    with pytest.raises(ConfigError, match="must exceed the 24 steps"):
        continue_checkpoint(_run(tmp_path, "c12", 12, source=done))
    unsaved = _finished(_run(tmp_path, "e12", 12), 12, checkpoint=False)
    with pytest.raises(ConfigError, match="kept no checkpoint at its last step 12") as e:
        continue_checkpoint(_run(tmp_path, "e24", 24, source=unsaved))
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_continued_run_equals_a_fresh_run_of_its_length(tmp_path: Path) -> None:
    """The dose chain's promise, through the pipeline's own dataset and train stages on the embedded model:
    2 steps, then a run continuing them to 4 steps, gives the adapter of a fresh 4-step run."""
    import asyncio

    from safetensors.torch import load_file

    from clca.pipeline import STAGE_DEFS, _Models

    stages = {s.name: s.run for s in STAGE_DEFS}
    small = {
        "dataset__tokenizer": None,
        "dataset__control_rows": 16,
        "train__save_steps": 1,
        "train__max_length": 256,
        "eval__items": ["Q1"],
    }

    def run(cfg: RunConfig) -> Path:
        with RunStore(cfg.run_dir) as st:
            st.set_meta(CONFIG, cfg.model_dump(mode="json"))
            for name in ("dataset", "train"):
                asyncio.run(stages[name](cfg, st, _Models(False)))
        return Path(cfg.run_dir) / "adapter" / "adapter_model.safetensors"

    short = run(_run(tmp_path, "d1", 1, **small))
    continued = run(_run(tmp_path, "d2", 2, source=tmp_path / "d1", **small))
    fresh = run(_run(tmp_path, "f2", 2, **small))
    a, b, c = (load_file(str(p)) for p in (short, continued, fresh))
    assert json.loads((tmp_path / "d2" / "adapter" / "train_result.json").read_text())["resumed_from"].endswith(
        "checkpoint-1"
    )
    assert set(b) == set(c) and any(not (a[k] == b[k]).all() for k in a)  # trained on past the shorter run
    assert all((b[k] - c[k]).abs().max().item() < 1e-5 for k in b), "the continued run differs from a fresh one"
