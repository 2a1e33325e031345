"""Sotopia JSONL import/export (a lossless round trip of the shared benchmark files) and Sotopia's
scenarios as the seed set (local files, the Hugging Face copy, a run)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from clca.errors import DataError
from clca.llm import GenParams, Message, MockLLM
from clca.pipeline import RunConfig, run_pipeline
from clca.scenarios import (
    AdaptConfig,
    Relationship,
    Scenario,
    adapt_scenarios,
    check_scenario,
    export_sotopia,
    import_sotopia,
    iter_scenarios,
    load_seeds,
    read_scenarios,
    read_sotopia_files,
    sotopia_seeds,
    write_scenarios,
)
from clca.scenarios._sotopia import FILES
from clca.store import RunStore

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


# -- Sotopia's scenarios as the seed set -------------------------------------------------------------------
@pytest.mark.shared
def test_sotopia_seeds_one_per_environment_or_all(sotopia_dir: Path) -> None:
    raw = read_sotopia_files(sotopia_dir)
    one = sotopia_seeds(sotopia_dir)
    assert len(one) == len({e["env_id"] for e in raw["envs"]}) == 90
    assert len({s.extra["sotopia"]["env"]["env_id"] for s in one}) == 90
    first_combo = {}
    for c in raw["combos"]:
        first_combo.setdefault(c["env_id"], c["combo_id"])
    assert [s.provenance.id for s in one] == [
        c["combo_id"] for c in raw["combos"] if first_combo[c["env_id"]] == c["combo_id"]
    ]
    assert len(sotopia_seeds(sotopia_dir, per_env=2)) == 180
    assert len(sotopia_seeds(sotopia_dir, per_env=None)) == 450
    ids = [raw["combos"][7]["combo_id"], raw["combos"][3]["combo_id"]]
    assert [s.provenance.id for s in sotopia_seeds(sotopia_dir, ids=ids)] == ids
    with pytest.raises(DataError, match="unknown Sotopia combo id"):
        sotopia_seeds(sotopia_dir, ids=["nope"])
    with pytest.raises(DataError, match="Sotopia profile directory not found"):
        sotopia_seeds(sotopia_dir / "missing")


@pytest.mark.shared
def test_sotopia_from_hugging_face_downloads_the_four_profile_files(
    sotopia_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `hf` code path asks huggingface_hub for the Space's profile files (offline here: the download
    is served from the shared copy, laid out as the Hub cache lays it out)."""
    import huggingface_hub

    asked: list[tuple[str, str, str]] = []

    def fake_download(repo_id: str, filename: str, *, repo_type: str, revision: str | None = None) -> str:
        asked.append((repo_id, filename, repo_type))
        dst = tmp_path / "snapshot" / filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((sotopia_dir / Path(filename).name).read_bytes())
        return str(dst)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    seeds = sotopia_seeds("hf", per_env=1)
    assert len(seeds) == 90
    assert asked == [("cmu-lti/sotopia-space", f"profiles/{name}", "space") for name in FILES.values()]
    asked.clear()
    assert len(sotopia_seeds("hf:someone/mirror", per_env=None)) == 450 and asked[0][0] == "someone/mirror"

    def offline(*_a: object, **_k: object) -> str:
        raise OSError("We have no connection\nor the file is not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DataError, match=r"cannot download profiles/environment_profiles.jsonl .*no connection or"):
        sotopia_seeds("hf")


def _adapted(_m: Sequence[Message], _p: GenParams) -> str:
    chars = [
        {"first_name": f, "last_name": last, "age": age, "gender": g, "pronouns": p, "occupation": o,
         "public_info": pi, "personality": "Calm.", "secret": "Nothing.", "goal": goal}
        for f, last, age, g, p, o, pi, goal in (
            ("Haruto", "Kimura", 34, "man", "he/him", "clerk", "Works at city hall.", "Borrow the car."),
            ("Aoi", "Shimizu", 31, "woman", "she/her", "designer", "Draws posters.", "Keep the car for work."),
        )
    ]  # fmt: skip
    return json.dumps({"setting": "Two friends meet at a station in Sendai.", "characters": chars})


@pytest.mark.shared
def test_adapt_sotopia_seeds_through_the_config(sotopia_dir: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    cfg = AdaptConfig(sotopia=str(sotopia_dir), n=2, progress=False)
    llm = MockLLM(_adapted)
    s = asyncio.run(adapt_scenarios(store, llm, "Japan", cfg))
    assert s.ok == 2
    seeds = {x.provenance.id: x for x in sotopia_seeds(sotopia_dir)}
    for key, sc in iter_scenarios(store):
        seed = seeds[sc.provenance.seed_id or ""]
        assert key == f"JPN/{seed.provenance.id}" and sc.relationship == seed.relationship
        assert sc.provenance.kind == "adapted" and sc.provenance.source == seed.provenance.source
        prompt = next(c[-1]["content"] for c in llm.calls if seed.setting[:40] in c[-1]["content"])
        assert seed.characters[0].first_name not in prompt  # names are hidden from the model


@pytest.mark.shared
@pytest.mark.slow
def test_run_with_sotopia_seeds_on_embedded_model(sotopia_dir: Path, tmp_path: Path) -> None:
    """A run config that names Sotopia's files as seeds imports them and adapts one on the real model."""
    cfg = RunConfig.model_validate(
        {
            "run_dir": str(tmp_path / "run"),
            "cultures": ["Japan"],
            "cache": False,
            "scenarios": {"sotopia": str(sotopia_dir), "n": 1, "max_attempts": 1, "schema_attempts": 1,
                          "max_tokens": 40, "progress": False},
        }
    )  # fmt: skip
    (res,) = asyncio.run(run_pipeline(cfg, until="scenarios"))
    assert res.stage == "scenarios" and res.model_calls > 0
    seeds = {x.provenance.id: x for x in sotopia_seeds(sotopia_dir)}
    with RunStore(tmp_path / "run") as store:
        recs = list(store.iter("scenario", status=None))
    assert len(recs) == 1
    rec = recs[0]
    culture, seed_id = rec.key.split("/")
    assert culture == "JPN" and seed_id in seeds  # the key names a Sotopia env-agent combo
    if rec.status == "ok":
        sc = Scenario.model_validate(rec.data)
        ref = seeds[seed_id]
        assert check_scenario(sc, ref) == [] and sc.relationship == ref.relationship
        assert sc.provenance.seed_id == seed_id and sc.provenance.source == ref.provenance.source
    else:  # the tiny model may fail; then it is a counted failure with a known reason, never a silent one
        assert rec.error and "after 1 attempts" in rec.error


def test_cli_adapt_bad_sotopia_source_fails_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clca.cli.main import main

    run = tmp_path / "run"
    for args, msg in (
        (["--sotopia", str(tmp_path / "nowhere")], "Sotopia profile directory not found"),
        (["--sotopia", str(tmp_path), "--seeds-file", "x.jsonl"], "both name the seeds"),
        (["--sotopia", str(tmp_path)], "environment_profiles.jsonl: Sotopia file not found"),
    ):
        with pytest.raises(SystemExit) as ei:
            main(["scenarios", "adapt", "--culture", "Japan", "--run-dir", str(run), *args])
        err = capsys.readouterr().err
        assert ei.value.code == 2 and msg in err and err.strip().count("\n") == 0, err
        assert not run.exists()
