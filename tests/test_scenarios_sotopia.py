"""Sotopia JSONL import/export: a lossless round trip of the shared benchmark files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clca.errors import DataError
from clca.scenarios import (
    Relationship,
    Scenario,
    export_sotopia,
    import_sotopia,
    load_seeds,
    read_scenarios,
    read_sotopia_files,
    write_scenarios,
)
from clca.scenarios._sotopia import FILES

IDS = {"envs": "env_id", "agents": "agent_id", "relationships": "relationship_id", "combos": "combo_id"}


@pytest.fixture(scope="module")
def sotopia_dir(shared_data: Path) -> Path:
    return shared_data / "sotopia" / "sotopia-space"


def _by_id(records: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    return {k: {r[IDS[k]]: r for r in v} for k, v in records.items()}


@pytest.mark.shared
def test_import_builds_one_scenario_per_combo(sotopia_dir: Path) -> None:
    imp = import_sotopia(sotopia_dir)
    assert len(imp.scenarios) == 450
    raw = read_sotopia_files(sotopia_dir)
    assert {k: len(v) for k, v in raw.items()} == {"envs": 90, "agents": 40, "relationships": 120, "combos": 450}
    envs = {e["env_id"]: e for e in raw["envs"]}
    agents = {a["agent_id"]: a for a in raw["agents"]}
    for s, combo in zip(imp.scenarios, raw["combos"], strict=True):
        env = envs[combo["env_id"]]
        assert s.provenance.kind == "sotopia" and s.provenance.id == combo["combo_id"]
        assert s.relationship.code == int(env["relationship"])
        assert [c.goal for c in s.characters] == [g.strip() for g in env["agent_goals"]]
        assert [c.first_name for c in s.characters] == [agents[i]["first_name"] for i in combo["agent_ids"]]
    # hint tags in goals are kept verbatim
    assert any("<extra_info>" in c.goal for s in imp.scenarios for c in s.characters)
    assert any("<strategy_hint>" in c.goal for s in imp.scenarios for c in s.characters)
    assert len(imp.unreferenced["relationships"]) == 25  # pairs no benchmark combo uses


@pytest.mark.shared
def test_round_trip_is_lossless(sotopia_dir: Path, tmp_path: Path) -> None:
    imp = import_sotopia(sotopia_dir)
    # through our own JSONL format and back, then to Sotopia's four files
    ours = tmp_path / "scenarios.jsonl"
    write_scenarios(ours, imp.scenarios)
    again = read_scenarios(ours)
    assert again == imp.scenarios
    out = tmp_path / "sotopia"
    counts = export_sotopia(again, out, imp.unreferenced)
    assert counts == {FILES["envs"]: 90, FILES["agents"]: 40, FILES["relationships"]: 120, FILES["combos"]: 450}
    original = _by_id(read_sotopia_files(sotopia_dir))
    exported = _by_id(read_sotopia_files(out))
    for kind in IDS:
        assert exported[kind] == original[kind], kind  # every record, every field, same values and types
    # combos keep their order and agent order
    first = json.loads((out / FILES["combos"]).read_text(encoding="utf-8").splitlines()[0])
    assert first == json.loads((sotopia_dir / FILES["combos"]).read_text(encoding="utf-8").splitlines()[0])


def test_own_scenarios_export_and_import_back(tmp_path: Path) -> None:
    seeds = load_seeds(ids=["seed-001", "seed-010", "seed-040"])
    out = tmp_path / "sot"
    export_sotopia(seeds, out)
    raw = read_sotopia_files(out)
    assert all(e["relationship"] in {"0", "1", "2", "3", "4", "5"} for e in raw["envs"])
    back = import_sotopia(out).scenarios
    assert len(back) == 3
    for s, b in zip(seeds, back, strict=True):
        assert b.setting == s.setting and b.relationship == s.relationship and b.characters == s.characters
    # ids are stable across exports
    export_sotopia(seeds, tmp_path / "sot2")
    assert (tmp_path / "sot2" / FILES["envs"]).read_text() == (out / FILES["envs"]).read_text()


def test_bad_sotopia_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        import_sotopia(tmp_path)
    seeds = load_seeds(ids=["seed-001"])
    export_sotopia(seeds, tmp_path)
    lines = (tmp_path / FILES["agents"]).read_text().splitlines()
    rec = json.loads(lines[1])
    del rec["age"]
    lines[1] = json.dumps(rec)
    (tmp_path / FILES["agents"]).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"agent_profiles.jsonl: record 2: field 'age': missing"):
        import_sotopia(tmp_path)


def test_relationship_codes() -> None:
    assert [r.code for r in Relationship] == [0, 1, 2, 3, 4, 5]
    assert Relationship.from_code("4") is Relationship.romantic
    with pytest.raises(ValueError):
        Relationship.from_code(9)
    assert Scenario.model_json_schema()["additionalProperties"] is False
