"""`clca dataset build|stats` end to end, real Sotopia profiles as scenarios, shipped accelerate configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dataset_store import SCRIPT, make_run

from clca.cli.main import main
from clca.dataset import DatasetConfig, build_dataset
from clca.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def cli(argv: list[str]) -> None:
    """Run the CLI; success is exit code 0."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (0, None)


def test_cli_build_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path / "run", n_scenarios=3).close()
    out = tmp_path / "ds"
    cli(["dataset", "build", "--run-dir", str(tmp_path / "run"), "--out", str(out), "--variant", "dialogue_only",
          "--tokenizer", "none", "--val-fraction", "0.34", "--seed", "1", "--quiet"])  # fmt: skip
    text = capsys.readouterr().out
    assert "dataset dialogue_only" in text and f"wrote {out}" in text
    info = json.loads((out / "info.json").read_text())
    assert info["config"]["variant"] == "dialogue_only" and set(info["rows_by_task"]["train"]) == {"dialogue"}
    assert len(info["scenarios"]["validation"]) == 3  # ceil(0.34 * 6)
    with pytest.raises(SystemExit) as e:  # exists already
        main(["dataset", "build", "--run-dir", str(tmp_path / "run"), "--out", str(out), "--tokenizer", "none"])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["dataset", "build", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "c"),
              "--variant", "control", "--tokenizer", "none"])  # fmt: skip
    assert e.value.code == 2 and "control_path" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["dataset", "build", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "w"),
              "--weight", "intent", "--tokenizer", "none"])  # fmt: skip
    assert e.value.code == 2 and "TASK=NUMBER" in capsys.readouterr().err
    cli(["dataset", "stats", str(out), "--json"])
    stats = json.loads(capsys.readouterr().out)
    assert stats["token_stats"]["train"]["dialogue"]["rows"] == info["rows"]["train"]


@pytest.mark.shared
def test_real_sotopia_profiles_as_scenarios(tmp_path: Path, shared_data: Path) -> None:
    """Scenarios and characters read from the Sotopia export (at test time); scripted turns."""
    space = shared_data / "sotopia" / "sotopia-space"
    envs = {e["env_id"]: e for e in map(json.loads, (space / "environment_profiles.jsonl").open())}
    agents = {a["agent_id"]: a for a in map(json.loads, (space / "agent_profiles.jsonl").open())}
    combos = [json.loads(x) for x in (space / "env_agent_combo_storages.jsonl").open()][:6]
    store = RunStore(tmp_path / "run")
    for i, c in enumerate(combos):
        env, pair = envs[c["env_id"]], [agents[a] for a in c["agent_ids"]]
        key = f"USA/sotopia-{i:03d}"
        chars = [
            {
                **{k: a[k] for k in ("first_name", "last_name", "age", "gender", "occupation", "public_info")},
                "pronouns": a.get("gender_pronoun", ""),
                "secret": a.get("secret", ""),
                "goal": g,
            }
            for a, g in zip(pair, env["agent_goals"], strict=True)
        ]
        store.put("scenario", key, {"culture": "USA", "setting": env["scenario"], "relationship": "friend",
                                     "characters": chars})  # fmt: skip
        ep = f"{key}/s0"
        for idx, (agent, action, arg) in enumerate(SCRIPT):
            name = f"{pair[agent]['first_name']} {pair[agent]['last_name']}"
            store.put("turn", f"{ep}/t{idx:03d}", {"idx": idx, "agent": agent, "speaker": name,
                                                   "action_type": action, "argument": arg}, parent=ep)  # fmt: skip
        store.put("episode", ep, {"scenario_key": key, "culture": "USA"})
    info = build_dataset(store, DatasetConfig(variant="no_filter", tokenizer=None), tmp_path / "ds", progress=False)
    assert info.rows["train"] + info.rows["validation"] == 2 * len(combos)  # no intentions stored: task 1 only
    rows = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    for r in rows:
        sc = int(r["scenario"].rsplit("-", 1)[1])
        env, pair = envs[combos[sc]["env_id"]], [agents[a] for a in combos[sc]["agent_ids"]]
        side = int(r["id"][-1])
        system = r["messages"][0]["content"]
        assert env["scenario"] in system and env["agent_goals"][side] in system
        if env["agent_goals"][1 - side] != env["agent_goals"][side]:
            assert env["agent_goals"][1 - side] not in system
        if pair[1 - side]["secret"] and pair[1 - side]["secret"] != pair[side]["secret"]:
            assert pair[1 - side]["secret"] not in system
        assert "the United States" in system


def test_shipped_accelerate_configs_parse() -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    kinds = {}
    for name in ("ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"):
        cfg = ClusterConfig.from_yaml_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
        kinds[name] = (str(cfg.distributed_type), (cfg.deepspeed_config or {}).get("zero_stage"))
    assert kinds["ddp"][0].endswith("MULTI_GPU") and kinds["fsdp"][0].endswith("FSDP")
    assert kinds["deepspeed_zero2"][1] == 2 and kinds["deepspeed_zero3"][1] == 3
