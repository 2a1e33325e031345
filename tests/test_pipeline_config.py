"""`clca run` refuses bad configs before any model loads: one line naming file and field, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clca.errors import ConfigError
from clca.pipeline import RunConfig, load_run_config

ROOT = Path(__file__).resolve().parents[1]

BAD = {
    "malformed YAML": ("cultures: [Egypt\n", "malformed YAML at line"),
    "unknown top-level key": ("cultures: [Egypt]\nculturez: [Japan]\n", "culturez: unknown key"),
    "unknown stage key": ("cultures: [Egypt]\nroleplay: {max_turnz: 3}\n", "roleplay.max_turnz: unknown key"),
    "wrong type": ("cultures: [Egypt]\nroleplay: {max_turns: many}\n", "roleplay.max_turns:"),
    "unknown culture": ("cultures: [Atlantis]\n", "cultures: unknown culture 'Atlantis'"),
    "bad model string": ("cultures: [Egypt]\nmodels: {judge: gpt4}\n", "models.judge: bad model string 'gpt4'"),
    "bad model option": (
        "cultures: [Egypt]\nmodels: {student: 'embedded?max_batch=0'}\n",
        "models.student: bad model string 'embedded?max_batch=0': option max_batch: Input should be greater than",
    ),
    "impossible size": ("cultures: [Egypt]\nscenarios: {n: 5000}\n", "scenarios.n: 5000 is more than"),
    "no cultures": ("cultures: []\n", "cultures:"),
    "not a mapping": ("- a\n- b\n", "top level must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_located_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\n" + text if not text.startswith("-") else text)
    with pytest.raises(ConfigError) as e:
        load_run_config(path)
    msg = e.value.one_line()
    assert expected in msg, msg
    assert str(path) in msg and "\n" not in msg
    assert not (tmp_path / "run").exists()  # nothing written


def test_cli_bad_config_exit_2_without_output(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\nroleplay: {{max_turnz: 3}}\n")
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", "run", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {path}: roleplay.max_turnz: unknown key"]
    assert not (tmp_path / "run").exists()


def test_model_options_pass_through_to_the_adapted_student(tmp_path: Path) -> None:
    from clca.pipeline import adapted_model_string

    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\nmodels: {{student: 'embedded?max_batch=8'}}\n")
    cfg = load_run_config(path)
    assert cfg.models.student == "embedded?max_batch=8"
    adapted = adapted_model_string(cfg)
    assert adapted == f"embedded+lora:{tmp_path / 'run' / 'adapter'}?max_batch=8"  # options stay at the end
    assert cfg.stage_configs()["train"].model == "embedded?max_batch=8"


def test_shipped_configs_validate() -> None:
    from clca.study import is_study_config

    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert any(p.name == "demo.yaml" for p in configs)
    for p in configs:
        if is_study_config(p):  # a grid of runs (tests/test_study.py)
            continue
        cfg = load_run_config(p)
        assert isinstance(cfg, RunConfig)
        stages = cfg.stage_configs()
        assert set(stages) == {"scenarios", "roleplay", "judge", "reflect", "intents", "dataset", "train", "eval"}


def test_overrides_apply_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\n")
    cfg = load_run_config(path, {"roleplay.max_turns": 3, "seed": 7})
    st = cfg.stage_configs()
    assert st["roleplay"].max_turns == 3 and st["roleplay"].seed == 7 and st["train"].seed == 7


def test_demo_config_has_one_source() -> None:
    # `clca demo` runs the packaged copy; configs/demo.yaml is the one users read and edit: keep them equal
    from importlib.resources import files

    packaged = Path(str(files("clca") / "data" / "configs" / "demo.yaml"))
    assert packaged.read_bytes() == (ROOT / "configs" / "demo.yaml").read_bytes(), (
        "configs/demo.yaml and src/clca/data/configs/demo.yaml differ: edit one and copy it to the other"
    )


SECTIONS = ["models", "scenarios", "roleplay", "judge", "intents", "dataset", "train", "eval"]


@pytest.mark.parametrize("section", SECTIONS)
def test_a_typo_under_every_section_is_a_one_line_error(tmp_path: Path, section: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\n{section}: {{colour_typo: 3}}\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(path)
    assert e.value.one_line() == f"{path}: {section}.colour_typo: unknown key"


def test_sections_are_typed_with_the_stage_config_classes() -> None:
    from pydantic import BaseModel

    from clca.pipeline import STAGE_DEFS, STAGES, ModelsConfig, section_models

    assert STAGES == ("scenarios", "roleplay", "judge", "reflect", "intents", "dataset", "train", "eval", "report")
    for stage in STAGE_DEFS:
        if stage.config is not None:
            assert RunConfig.model_fields[stage.name].annotation is stage.config, stage.name
    assert set(section_models()) == {s.name for s in STAGE_DEFS if s.config is not None}

    def forbids(model: type[BaseModel], seen: set[type]) -> None:  # every nested model refuses unknown keys
        if model in seen:
            return
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", model.__name__
        for f in model.model_fields.values():
            for t in (f.annotation, *getattr(f.annotation, "__args__", ())):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    forbids(t, seen)

    seen: set[type] = set()
    for model in (RunConfig, ModelsConfig, *section_models().values()):
        forbids(model, seen)


def test_train_preset_and_inherited_values_merge_in_one_place(tmp_path: Path) -> None:
    from clca.train import PRESETS

    path = tmp_path / "c.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\nseed: 3\ncultures: [Egypt]\ncompare: [Japan]\n"
        "models: {student: 'embedded?max_batch=4'}\ntrain: {preset: paper, lora_r: 16}\neval: {seed: 9}\n"
    )
    cfg = load_run_config(path)
    assert cfg.train.lora_r == 16 and cfg.train.learning_rate == PRESETS["paper"]["learning_rate"]
    assert (cfg.train.model, cfg.train.seed, cfg.roleplay.seed) == ("embedded?max_batch=4", 3, 3)
    assert (cfg.eval.cultures, cfg.eval.compare, cfg.eval.seed) == (["Egypt"], ["Japan"], 9)
    assert cfg.stage_configs()["train"] is cfg.train
