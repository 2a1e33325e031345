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
        assert set(stages) == {"scenarios", "roleplay", "judge", "intents", "dataset", "train", "eval"}


def test_overrides_apply_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\ncultures: [Egypt]\n")
    cfg = load_run_config(path, {"roleplay.max_turns": 3, "seed": 7})
    st = cfg.stage_configs()
    assert st["roleplay"].max_turns == 3 and st["roleplay"].seed == 7 and st["train"].seed == 7
