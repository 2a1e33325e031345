"""Norm inputs: Sotopia-pi's inspirational prompts, CSV/JSONL with a source column, filters, run config."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from clca.errors import ConfigError, DataError
from clca.llm import GenParams, Message, MockLLM
from clca.pipeline import RunConfig
from clca.scenarios import (
    AdaptConfig,
    NormsConfig,
    expand_norms,
    generate_from_norms,
    iter_scenarios,
    load_norms,
    load_norms_config,
    source_counts,
)
from clca.store import RunStore


@pytest.fixture(scope="module")
def used_prompt(shared_data: Path) -> Path:
    return shared_data / "sotopia" / "sotopia-pi" / "used_prompt.csv"


@pytest.mark.shared
def test_sotopia_pi_inspirational_prompts(used_prompt: Path) -> None:
    lines = used_prompt.read_text(encoding="utf-8").splitlines()
    norms = load_norms(used_prompt, allow_no_culture=True)
    assert len(norms) == len(lines) - 1  # every prompt, none dropped
    counts = source_counts(norms)
    assert {"normbank", "social_iqa", "social_chem"} <= set(counts) and sum(counts.values()) == len(norms)
    assert counts["unknown"] == sum(1 for ln in lines[1:] if ln.split("|")[1] == "nan")  # 'nan' source rows
    first = lines[1].split("|")
    assert (norms[0].id, norms[0].source, norms[0].norm, norms[0].culture) == (first[2], first[1], first[3], None)
    # a culture-free file needs a culture unless the caller accepts culture-free norms
    with pytest.raises(DataError, match=r"used_prompt.csv: record 1: field 'culture': missing"):
        load_norms(used_prompt)
    jp = load_norms(used_prompt, culture="Japan")
    assert {n.culture for n in jp} == {"Japan"}


@pytest.mark.shared
def test_source_filter_limit_and_seed(used_prompt: Path) -> None:
    all_norms = load_norms(used_prompt, allow_no_culture=True)
    nb = load_norms(used_prompt, culture="Japan", sources=["NormBank"])  # case-insensitive
    assert nb and {n.source for n in nb} == {"normbank"} and len(nb) == source_counts(all_norms)["normbank"]
    two = load_norms(used_prompt, culture="Japan", sources=["social_iqa", "social_chem"], limit=5)
    assert [n.id for n in two] == [n.id for n in all_norms if n.source in ("social_iqa", "social_chem")][:5]
    a = load_norms(used_prompt, culture="Japan", limit=20, seed=3)
    b = load_norms(used_prompt, culture="Japan", limit=20, seed=3)
    c = load_norms(used_prompt, culture="Japan", limit=20, seed=4)
    assert [n.id for n in a] == [n.id for n in b] != [n.id for n in c]
    order = {n.id: i for i, n in enumerate(all_norms)}
    assert [order[n.id] for n in a] == sorted(order[n.id] for n in a)  # drawn, kept in file order
    assert len({n.source for n in a}) >= 2
    with pytest.raises(DataError, match=r"no norm has source culture_atlas; sources here: normbank \(264\)"):
        load_norms(used_prompt, culture="Japan", sources=["culture_atlas"])


def test_plain_csv_and_jsonl_with_source(tmp_path: Path) -> None:
    csv_path = tmp_path / "norms.csv"
    csv_path.write_text(
        "id,norm,culture,source\n"
        "a1,Greet the eldest person first.,Japan,culture_atlas\n"
        'a2,"Bring a small gift, not an expensive one.",,social_chem\n'
        "a3,Arrive a little late to a dinner party.,Mexico,\n",
        encoding="utf-8",
    )
    got = load_norms(csv_path, culture="Germany")
    assert [(n.id, n.culture, n.source) for n in got] == [
        ("a1", "Japan", "culture_atlas"),
        ("a2", "Germany", "social_chem"),  # the default culture fills the empty cell
        ("a3", "Mexico", "unknown"),  # an empty source in a source column
    ]
    assert got[1].norm == "Bring a small gift, not an expensive one."
    tsv = tmp_path / "norms.tsv"
    tsv.write_text("norm\tsource\nKeep your voice low on trains.\tmine\n", encoding="utf-8")
    assert [(n.id, n.source, n.culture) for n in load_norms(tsv, allow_no_culture=True)] == [("001", "mine", None)]
    jl = tmp_path / "norms.jsonl"
    jl.write_text(
        json.dumps({"norm": "Remove shoes indoors.", "source": "culture_atlas"})
        + "\n"
        + json.dumps({"norm": "Tip the waiter.", "source": "normbank", "culture": "USA"})
        + "\n",
        encoding="utf-8",
    )
    assert [n.source for n in load_norms(jl, culture="JP", sources=["culture_atlas"])] == ["culture_atlas"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"norm": "Bow.", "culture": "JP", "weight": 2}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: record 1: field 'weight': unknown key"):
        load_norms(bad)


def _answer(_m: Sequence[Message], _p: GenParams) -> str:
    chars = [
        {"first_name": f, "last_name": last, "age": age, "gender": g, "pronouns": p, "occupation": o,
         "public_info": pi, "personality": "Calm.", "secret": "None worth telling.", "goal": goal}
        for f, last, age, g, p, o, pi, goal in (
            ("Lena", "Vogel", 34, "woman", "she/her", "teacher", "Teaches at a school.", "Ask for help moving."),
            ("Jonas", "Brandt", 38, "man", "he/him", "baker", "Runs a bakery.", "Keep the weekend free."),
        )
    ]  # fmt: skip
    return json.dumps({"setting": "Two neighbours meet on the stairs.", "relationship": "acquaintance",
                       "characters": chars})  # fmt: skip


@pytest.mark.shared
def test_culture_free_norms_are_played_in_every_target_culture(used_prompt: Path, tmp_path: Path) -> None:
    cfg = NormsConfig(file=used_prompt, sources=["normbank"], limit=2, seed=1)
    norms = load_norms_config(cfg)
    assert len(norms) == 2 and all(n.culture is None for n in norms)
    expanded = expand_norms(norms, ["Germany", "Mexico"])
    assert [(n.id, n.culture) for n in expanded] == [(n.id, c) for n in norms for c in ("Germany", "Mexico")]
    store = RunStore(tmp_path / "run")
    s = asyncio.run(generate_from_norms(store, MockLLM(_answer), expanded, AdaptConfig(progress=False)))
    assert s.ok == 4
    keys = {k for k, _ in iter_scenarios(store)}
    assert keys == {f"{c}/norm-{n.id}" for n in norms for c in ("DEU", "MEX")}
    sc = dict(iter_scenarios(store))[f"DEU/norm-{norms[0].id}"]
    assert sc.provenance.source == "normbank" and sc.provenance.norm == norms[0].norm
    with pytest.raises(DataError, match="no culture"):
        asyncio.run(generate_from_norms(store, MockLLM(_answer), norms, AdaptConfig(progress=False)))


def test_run_config_norms_section(tmp_path: Path) -> None:
    base = {"run_dir": str(tmp_path / "run"), "cultures": ["Japan"]}
    cfg = RunConfig.model_validate({**base, "norms": "n.csv"})
    assert cfg.norms == Path("n.csv")
    section = {"file": "p.csv", "sources": ["normbank"], "limit": 20, "seed": 0}
    cfg = RunConfig.model_validate({**base, "norms": section})
    assert isinstance(cfg.norms, NormsConfig) and cfg.norms.limit == 20
    with pytest.raises(ValueError, match="limi"):
        RunConfig.model_validate({**base, "norms": {"file": "p.csv", "limi": 20}})
    with pytest.raises((ValueError, ConfigError), match="seeds_file and sotopia"):
        RunConfig.model_validate({**base, "scenarios": {"sotopia": "x", "seeds_file": "y.jsonl"}})


@pytest.mark.shared
def test_cli_from_norms_filters_fail_before_any_model_loads(
    used_prompt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clca.cli.main import main

    run = tmp_path / "run"
    for args, msg in (
        ([], "field 'culture': missing"),
        (["--culture", "Japan", "--source", "culture_atlas"], "no norm has source culture_atlas"),
        (["--culture", "Atlantis", "--limit", "2"], "unknown culture 'Atlantis'"),
    ):
        with pytest.raises(SystemExit) as ei:
            main(["scenarios", "from-norms", str(used_prompt), "--run-dir", str(run), *args])
        err = capsys.readouterr().err
        assert ei.value.code == 2 and msg in err and err.strip().count("\n") == 0, err
        assert not run.exists()


@pytest.mark.shared
def test_norms_from_the_published_hugging_face_dataset(used_prompt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hf:OWNER/DATASET/FILE asks huggingface_hub for the dataset file (offline here: served from the
    shared copy of the same file)."""
    import huggingface_hub

    asked: list[tuple[str, str, str]] = []

    def fake_download(repo_id: str, filename: str, *, repo_type: str) -> str:
        asked.append((repo_id, filename, repo_type))
        return str(used_prompt)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    norms = load_norms_config(NormsConfig(file=Path("hf:cmu-lti/sotopia-pi/used_prompt.csv"), limit=3))
    assert asked == [("cmu-lti/sotopia-pi", "used_prompt.csv", "dataset")] and len(norms) == 3
    with pytest.raises(DataError, match="expected hf:OWNER/DATASET/FILE"):
        load_norms("hf:cmu-lti/sotopia-pi")

    def offline(*_a: object, **_k: object) -> str:
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DataError, match="cannot download used_prompt.csv from dataset cmu-lti/sotopia-pi: offline"):
        load_norms("hf:cmu-lti/sotopia-pi/used_prompt.csv", allow_no_culture=True)
