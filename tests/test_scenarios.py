"""Scenario schema, seeds, checks, file formats, adaptation/norm logic with MockLLM, stats and CLI."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from clca.culture import UnknownCultureError, get_culture
from clca.errors import DataError
from clca.llm import GenParams, Message, MockLLM
from clca.scenarios import (
    AdaptConfig,
    AdaptedDraft,
    Relationship,
    Scenario,
    ScenarioDraft,
    adapt_scenarios,
    check_scenario,
    generate_from_norms,
    goal_revealed,
    iter_scenarios,
    jaccard,
    load_norms,
    load_seeds,
    near_duplicate_rate,
    read_scenarios,
    scenario_stats,
)
from clca.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = {
    "family",
    "work",
    "neighbours",
    "friendship",
    "commerce",
    "school",
    "health",
    "hospitality",
    "romance",
    "community",
    "negotiation",
    "conflict",
}


# ---- seeds -------------------------------------------------------------------------------------


def test_seeds_are_many_valid_and_spread() -> None:
    seeds = load_seeds()
    assert len(seeds) >= 60
    ids = [s.provenance.id for s in seeds]
    assert len(set(ids)) == len(ids) and all(i.startswith("seed-") for i in ids)
    domains = Counter(s.domain for s in seeds)
    assert set(domains) == DOMAINS and min(domains.values()) >= 4
    rels = Counter(s.relationship for s in seeds)
    assert set(rels) == set(Relationship) and min(rels.values()) >= 5
    for s in seeds:
        assert s.culture is None and s.provenance.kind == "seed"
        assert check_scenario(s) == [], s.provenance.id
        s.adapted_draft()  # fits the model-facing length limits
        s.draft()
    names = [c.full_name for s in seeds for c in s.characters]
    assert len(set(names)) == len(names)


def test_load_seeds_by_id_and_unknown_id() -> None:
    picked = load_seeds(ids=["seed-003", "seed-001"])
    assert [s.provenance.id for s in picked] == ["seed-003", "seed-001"]
    with pytest.raises(DataError, match="seed-999"):
        load_seeds(ids=["seed-999"])


@pytest.mark.shared
def test_seeds_are_original_not_sotopia_text(shared_data: Path) -> None:
    envs = [
        json.loads(line)
        for line in (shared_data / "sotopia" / "sotopia-space" / "environment_profiles.jsonl").open(encoding="utf-8")
    ]
    theirs = [e["scenario"] for e in envs]
    for s in load_seeds():
        best = max(jaccard(s.setting, t) for t in theirs)
        assert best < 0.5, (s.provenance.id, best)


# ---- checks ------------------------------------------------------------------------------------


def _adapted(seed: Scenario, **changes: object) -> AdaptedDraft:
    d = seed.adapted_draft().model_dump()
    d["characters"][0].update(first_name="Akira", last_name="Sato")
    d["characters"][1].update(first_name="Asuka", last_name="Tanaka")
    for path, value in changes.items():
        i, field = path.split("__")
        d["characters"][int(i)][field] = value
    return AdaptedDraft.model_validate(d)


def test_check_scenario_accepts_a_proper_adaptation() -> None:
    seed = load_seeds()[0]
    assert check_scenario(_adapted(seed), seed) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"0__first_name": "Anna"}, "names_unchanged"),  # seed-001's first character is Anna Smith
        ({"1__last_name": "Smith"}, "names_unchanged"),
        ({"1__first_name": "Akira", "1__last_name": "Sato"}, "same_names"),
        ({"1__goal": "x"}, "empty_goal"),
        ({"0__age": 4}, "implausible_age"),
        ({"0__age": 110}, "implausible_age"),
        ({"1__first_name": "Akira"}, "same_names"),  # a first name shared is a copied person, too
        ({"1__first_name": "Asuka Akira"}, "same_names"),
        ({"1__first_name": "Conceer 31-01"}, "implausible_name"),
        ({"0__last_name": "Akira"}, "implausible_name"),  # first name == last name
    ],
)
def test_check_scenario_reasons(changes: dict[str, object], reason: str) -> None:
    seed = load_seeds()[0]
    problems = check_scenario(_adapted(seed, **changes), seed)
    assert any(p.startswith(reason + ":") for p in problems), problems


def test_same_goals_and_revealed_goal() -> None:
    seed = load_seeds()[0]
    goal = "Convince your partner to sell the old family car before winter"
    d = _adapted(seed, **{"0__goal": goal, "1__goal": goal})
    assert any(p.startswith("same_goals") for p in check_scenario(d, seed))
    d = _adapted(seed, **{"0__goal": goal, "1__public_info": f"Everyone knows she wants to {goal.lower()}."})
    assert any(p.startswith("goal_revealed: character 1") for p in check_scenario(d, seed))
    assert goal_revealed("Get the parking space", "Wants to get the parking space today")
    assert not goal_revealed("Get a refund for the jacket", "A regular customer of the shop for years.")


# ---- files -------------------------------------------------------------------------------------


def test_malformed_scenario_file_names_record_and_field(tmp_path: Path) -> None:
    good = load_seeds()[0].model_dump(mode="json")
    bad = json.loads(json.dumps(good))
    bad["characters"][0]["age"] = "old"
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        read_scenarios(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and "record 2" in msg and "characters.0.age" in msg
    bad2 = dict(good, relationship="enemies")
    p.write_text(json.dumps(bad2) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="record 1: field 'relationship'"):
        read_scenarios(p)
    p.write_text(json.dumps(dict(good, mood="happy")) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="record 1: field 'mood': unknown key"):
        read_scenarios(p)
    p.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="record 1: not valid JSON"):
        read_scenarios(p)


def test_norms_example_and_formats(tmp_path: Path) -> None:
    norms = load_norms(ROOT / "src" / "clca" / "data" / "norms_example.jsonl")
    assert len(norms) >= 10 and len({n.culture for n in norms}) >= 4
    for n in norms:
        get_culture(n.culture)
    csv_path = tmp_path / "n.csv"
    csv_path.write_text("norm,culture\nGreet elders first at gatherings.,Japan\nShake hands firmly.,DEU\n")
    got = load_norms(csv_path)
    assert [(n.id, n.culture, n.source) for n in got] == [("001", "Japan", "user"), ("002", "DEU", "user")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"norm": "Be on time.", "culture": "DEU"}\n{"norm": "Bow when greeting."}\n')
    with pytest.raises(DataError, match=r"bad.jsonl: record 2: field 'culture'"):
        load_norms(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(
        '{"id": "a", "norm": "Be on time.", "culture": "DEU"}\n{"id": "a", "norm": "Bow.", "culture": "JP"}\n'
    )
    with pytest.raises(DataError, match="record 2: field 'id': duplicate"):
        load_norms(dup)
    hdr = tmp_path / "h.csv"
    hdr.write_text("statement,country\nx,y\n")
    with pytest.raises(DataError, match="must contain 'norm'"):
        load_norms(hdr)


# ---- adaptation and generation logic (MockLLM) ---------------------------------------------------

_CHARS = [
    {
        "first_name": "Akira",
        "last_name": "Sato",
        "age": 41,
        "gender": "man",
        "pronouns": "he/him",
        "occupation": "office worker",
        "public_info": "Works at a trading company in Osaka.",
        "personality": "Careful and polite.",
        "secret": "He is thinking of changing jobs.",
        "goal": "Persuade your sister to host the family gathering this year.",
    },
    {
        "first_name": "Asuka",
        "last_name": "Tanaka",
        "age": 37,
        "gender": "woman",
        "pronouns": "she/her",
        "occupation": "nurse",
        "public_info": "Works night shifts at a hospital in Kobe.",
        "personality": "Warm and direct.",
        "secret": "She has already booked a trip for the holidays.",
        "goal": "Keep your holiday plans without upsetting your brother.",
    },
]


def _good_adaptation(_m: Sequence[Message], _p: GenParams) -> str:
    return json.dumps(
        {"setting": "Two siblings meet at a cafe in Osaka to plan the New Year visit.", "characters": _CHARS}
    )


def test_adapt_stores_valid_scenarios_and_resumes(tmp_path: Path) -> None:
    llm = MockLLM(_good_adaptation)
    store = RunStore(tmp_path / "run")
    cfg = AdaptConfig(seeds=["seed-001", "seed-002", "seed-003"], progress=False)
    s = asyncio.run(adapt_scenarios(store, llm, "Japan", cfg))
    assert (s.ok, s.failed, s.skipped) == (3, 0, 0)
    items = iter_scenarios(store, "japan")
    assert [k for k, _ in items] == ["JPN/seed-001", "JPN/seed-002", "JPN/seed-003"]
    seeds = {x.provenance.id: x for x in load_seeds()}
    for key, sc in items:
        seed = seeds[key.split("/")[1]]
        assert sc.culture == "JPN" and sc.relationship == seed.relationship and sc.domain == seed.domain
        assert sc.provenance.kind == "adapted" and sc.provenance.seed_id == seed.provenance.id
        assert sc.provenance.attempts == 1 and sc.provenance.model == "mock"
    # the prompt carries the verbalised culture and the seed
    prompt = llm.calls[0][-1]["content"]
    assert get_culture("Japan").describe() in prompt
    assert "Japan" in prompt
    assert store.get_meta("culture/JPN")["name"] == "Japan"
    # a second run skips everything (no model calls)
    n_calls = len(llm.calls)
    s2 = asyncio.run(adapt_scenarios(store, llm, "JPN", cfg))
    assert (s2.ok, s2.skipped) == (0, 3) and len(llm.calls) == n_calls


def test_adapt_records_failures_with_reasons_after_bounded_attempts(tmp_path: Path) -> None:
    seed = load_seeds(ids=["seed-001"])[0]
    d = seed.adapted_draft().model_dump()
    d["characters"][1]["goal"] = d["characters"][0]["goal"]  # not fixable by drawing names
    llm = MockLLM([json.dumps(d)])
    store = RunStore(tmp_path / "run")
    s = asyncio.run(adapt_scenarios(store, llm, "DEU", AdaptConfig(seeds=["seed-001"], max_attempts=2, progress=False)))
    assert (s.ok, s.failed) == (0, 1)
    assert len(llm.calls) <= 2 * 2  # bounded: attempts x schema attempts
    rec = store.get("scenario", "DEU/seed-001")
    assert rec is not None and rec.status == "failed"
    assert "after 2 attempts" in rec.error
    first = rec.data["reasons"][0]  # every attempt's problems are kept with the failure
    assert first.startswith("name_not_of_culture:") and "same_goals" in first  # "Smith", and the copied goal
    assert sum(store.failure_reasons("scenario").values()) == 1


def test_adapt_draws_culture_names_after_repeated_name_failures(tmp_path: Path) -> None:
    from clca.scenarios._names import name_problem

    seed = load_seeds(ids=["seed-001"])[0]
    llm = MockLLM([seed.adapted_draft().model_dump_json()])  # keeps the seed's (English) names every time
    store = RunStore(tmp_path / "run")
    s = asyncio.run(adapt_scenarios(store, llm, "DEU", AdaptConfig(seeds=["seed-001"], max_attempts=3, progress=False)))
    assert s.ok == 1 and len(llm.calls) == 1  # drawn at the first name failure, no second ask
    sc = Scenario.model_validate(store.get("scenario", "DEU/seed-001").data)
    assert sc.provenance.names == "drawn" and set(sc.provenance.rejected) == {"name_not_of_culture", "names_unchanged"}
    seed_names = {n for c in seed.characters for n in (c.first_name, c.last_name)}
    for c, old in zip(sc.characters, seed.characters, strict=True):
        assert c.gender == old.gender and not {c.first_name, c.last_name} & seed_names
        assert name_problem(c.first_name, c.last_name, c.gender, "DEU") is None


@pytest.mark.parametrize(
    ("names", "reasons"),
    [
        ([("Lena", "Lena"), ("Lena", "Lena")], {"implausible_name", "same_names"}),  # the demo's "Lena Lena" twice
        ([("Lena", "Becker"), ("Lena", "Wagner")], {"same_names"}),  # a second person with the first's first name
    ],
)
def test_adapt_draws_culture_names_when_names_are_the_only_problem(
    tmp_path: Path, names: list[tuple[str, str]], reasons: set[str]
) -> None:
    from clca.scenarios._names import name_problem

    seed = load_seeds(ids=["seed-017"])[0]  # two women: the drafts keep the seed's genders
    draft = seed.adapted_draft().model_dump()
    for c, (first, last) in zip(draft["characters"], names, strict=True):
        c.update(first_name=first, last_name=last)
    llm = MockLLM([json.dumps(draft)])  # the same names every time
    store = RunStore(tmp_path / "run")
    s = asyncio.run(adapt_scenarios(store, llm, "DEU", AdaptConfig(seeds=["seed-017"], max_attempts=2, progress=False)))
    assert s.ok == 1 and len(llm.calls) == 1  # drawn at the first failure, no re-ask
    sc = Scenario.model_validate(store.get("scenario", "DEU/seed-017").data)
    assert sc.provenance.names == "drawn" and set(sc.provenance.rejected) == reasons  # the failures stay counted
    a, b = sc.characters
    assert a.first_name != b.first_name and all(c.first_name != c.last_name for c in sc.characters)
    assert all(name_problem(c.first_name, c.last_name, c.gender, "DEU") is None for c in sc.characters)
    assert [c.goal for c in sc.characters] == [c["goal"] for c in draft["characters"]]  # only the names changed


def test_adapt_invalid_json_is_a_recorded_failure(tmp_path: Path) -> None:
    llm = MockLLM(["not json at all"])
    store = RunStore(tmp_path / "run")
    cfg = AdaptConfig(seeds=["seed-002"], max_attempts=2, schema_attempts=2, progress=False)
    s = asyncio.run(adapt_scenarios(store, llm, "MEX", cfg))
    assert s.failed == 1 and len(llm.calls) == 4
    assert store.failure_reasons("scenario") == {"invalid_output": 1}


def test_adapt_second_attempt_can_succeed(tmp_path: Path) -> None:
    llm = MockLLM(["not json", _good_adaptation([], GenParams())])  # the first ask fails, the second passes
    store = RunStore(tmp_path / "run")
    cfg = AdaptConfig(seeds=["seed-001"], schema_attempts=1, progress=False)
    asyncio.run(adapt_scenarios(store, llm, "JPN", cfg))
    ((_, sc),) = iter_scenarios(store)
    assert sc.provenance.attempts == 2


def test_adapt_to_custom_profile_and_n_selection(tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text("name: Bavaria\nhofstede: {pdi: 30}\n")
    store = RunStore(tmp_path / "run")
    s = asyncio.run(adapt_scenarios(store, MockLLM(_good_adaptation), str(prof), AdaptConfig(n=4, progress=False)))
    assert s.ok == 4
    keys = [k for k, _ in iter_scenarios(store, "bavaria")]
    assert len(keys) == 4 and all(k.startswith("bavaria/seed-") for k in keys)
    with pytest.raises(UnknownCultureError):
        asyncio.run(adapt_scenarios(store, MockLLM(_good_adaptation), "Atlantis", AdaptConfig(n=1)))


def _norm_answer(_m: Sequence[Message], _p: GenParams) -> str:
    return json.dumps(
        {
            "setting": "A dinner at a colleague's home in Mexico City.",
            "relationship": "acquaintance",
            "characters": _CHARS,
        }
    )


def test_generate_from_norms(tmp_path: Path) -> None:
    norms = load_norms(ROOT / "src" / "clca" / "data" / "norms_example.jsonl")
    llm = MockLLM(_norm_answer)
    store = RunStore(tmp_path / "run")
    s = asyncio.run(generate_from_norms(store, llm, norms[:3], AdaptConfig(progress=False)))
    assert s.ok == 3
    items = dict(iter_scenarios(store))
    assert set(items) == {f"JPN/norm-{n.id}" for n in norms[:3]}
    sc = items[f"JPN/norm-{norms[0].id}"]
    assert sc.provenance.kind == "norm" and sc.provenance.norm == norms[0].norm
    assert sc.provenance.seed_id is not None and sc.relationship == Relationship.acquaintance
    prompt = llm.calls[0][-1]["content"]
    assert norms[0].norm in prompt and get_culture("Japan").describe() in prompt
    # the few-shot example is one of the seeds, in the model-facing shape
    example = load_seeds(ids=[sc.provenance.seed_id])[0]
    assert example.setting in prompt


def test_copied_second_person_is_re_asked_alone(tmp_path: Path) -> None:
    """A draft whose second person copies the first gets a re-ask for the second person only."""

    def answer(m: Sequence[Message], _p: GenParams) -> str:
        if "needs its second person" in m[-1]["content"]:
            return json.dumps(_CHARS[1])
        return json.dumps(
            {"setting": "A dinner at a colleague's home in Osaka.", "relationship": "acquaintance",
             "characters": [_CHARS[0], _CHARS[0]]}
        )  # fmt: skip

    norms = load_norms(ROOT / "src" / "clca" / "data" / "norms_example.jsonl")[:1]
    llm = MockLLM(answer)
    store = RunStore(tmp_path / "run")
    s = asyncio.run(generate_from_norms(store, llm, norms, AdaptConfig(progress=False)))
    assert s.ok == 1 and len(llm.calls) == 2
    repair = llm.calls[1][-1]["content"]
    assert "not Akira, not Sato" in repair and _CHARS[0]["goal"] not in repair  # the first goal stays private
    ((_, sc),) = iter_scenarios(store)
    assert [c.full_name for c in sc.characters] == ["Akira Sato", "Asuka Tanaka"] and sc.provenance.attempts == 2


def test_generate_from_norms_unknown_culture_names_the_norm(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_text('{"id": "x1", "norm": "Be on time.", "culture": "Atlantis"}\n')
    with pytest.raises(UnknownCultureError, match="norm 'x1'"):
        asyncio.run(generate_from_norms(RunStore(tmp_path / "run"), MockLLM(_norm_answer), load_norms(p)))


# ---- stats -------------------------------------------------------------------------------------


def test_near_duplicates() -> None:
    assert jaccard("a b c d", "a b c d") == 1.0
    assert (
        near_duplicate_rate(["two friends meet at a cafe today", "two friends meet at a cafe today!", "x y z"]) == 2 / 3
    )
    assert near_duplicate_rate(["one thing", "another thing entirely"]) == 0.0


def test_stats_per_culture(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    asyncio.run(adapt_scenarios(store, MockLLM(_good_adaptation), "JPN", AdaptConfig(n=3, progress=False)))
    seed = load_seeds(ids=["seed-001"])[0]
    asyncio.run(
        adapt_scenarios(
            store,
            MockLLM([seed.adapted_draft().model_dump_json()]),
            "DEU",
            AdaptConfig(seeds=["seed-001"], max_attempts=1, progress=False),
        )
    )
    stats = {s.culture: s for s in scenario_stats(store)}
    jp, de = stats["JPN"], stats["DEU"]
    assert (jp.ok, jp.failed, jp.first_try_rate, jp.name_change_rate) == (3, 0, 1.0, 1.0)
    assert jp.near_duplicate_rate == 1.0  # the mock wrote the same setting three times
    # the only ask kept the seed's names: at the last attempt both people get names drawn from Faker's de_DE
    assert (de.ok, de.failed, de.names_drawn, de.names_share) == (1, 0, 1, 1.0)
    assert de.rejected["names_unchanged"] == 2 and de.rejected["name_not_of_culture"] >= 1
    assert jp.names_share == 1.0 and jp.characters_checked == 6


# ---- CLI ---------------------------------------------------------------------------------------


def _clca(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from clca.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(list(args))
    out = capsys.readouterr()
    return int(ei.value.code or 0), out.out, out.err


def test_cli_export_stats_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    with RunStore(run) as store:
        asyncio.run(adapt_scenarios(store, MockLLM(_good_adaptation), "JPN", AdaptConfig(n=2, progress=False)))
    out_file = tmp_path / "out.jsonl"
    code, out, err = _clca(capsys, "scenarios", "export", "--run-dir", str(run), "--out", str(out_file))
    assert code == 0, err
    assert len(read_scenarios(out_file)) == 2
    sot = tmp_path / "sot"
    code, out, err = _clca(
        capsys, "scenarios", "export", "--run-dir", str(run), "--format", "sotopia", "--out", str(sot)
    )
    assert code == 0, err
    assert len((sot / "env_agent_combo_storages.jsonl").read_text().splitlines()) == 2
    code, out, err = _clca(capsys, "scenarios", "stats", "--run-dir", str(run))
    assert code == 0 and "JPN" in out and "100%" in out
    code, out, err = _clca(
        capsys, "scenarios", "adapt", "--culture", "Atlantis", "--run-dir", str(run), "--model", "mock"
    )
    assert code == 2 and err.startswith("error: unknown culture 'Atlantis'") and err.count("\n") == 1
    code, out, err = _clca(capsys, "scenarios", "stats", "--run-dir", str(tmp_path / "none"))
    assert code == 2 and "no run database" in err
    code, out, err = _clca(capsys, "scenarios", "export", "--run-dir", str(run), "--format", "xml", "--out", "x")
    assert code == 2 and "--format 'xml'" in err


def test_draft_schemas_are_strict() -> None:
    d = json.loads(_norm_answer([], GenParams()))
    ScenarioDraft.model_validate(d)
    with pytest.raises(ValueError):
        ScenarioDraft.model_validate({**d, "culture": "JPN"})
    with pytest.raises(ValueError):
        ScenarioDraft.model_validate({**d, "characters": d["characters"][:1]})
    schema = AdaptedDraft.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "relationship" not in schema["properties"]


def test_custom_culture_is_recorded_in_the_run(tmp_path: Path) -> None:
    from clca.culture import culture_in_run

    prof = tmp_path / "p.yaml"
    prof.write_text("name: Bavaria\ndescription: Beer gardens.\n")
    store = RunStore(tmp_path / "run")
    asyncio.run(adapt_scenarios(store, MockLLM(_good_adaptation), str(prof), AdaptConfig(n=1, progress=False)))
    ((_, sc),) = iter_scenarios(store)
    assert culture_in_run(store, sc.culture or "").describe() == "Beer gardens."
    assert culture_in_run(store, "JPN").name == "Japan"


def test_adapted_people_keep_the_seed_genders_and_pronouns(tmp_path: Path) -> None:
    """A small model writes a name or "males" into `gender`; an adaptation keeps who the people are."""
    chars = [dict(_CHARS[0], gender="Majd Udeen", pronouns="they"), dict(_CHARS[1], gender="males", pronouns="x")]
    answer = json.dumps({"setting": "Two people meet at a cafe in Osaka.", "characters": chars})
    store = RunStore(tmp_path / "run")
    cfg = AdaptConfig(seeds=["seed-001", "seed-002"], progress=False)
    s = asyncio.run(adapt_scenarios(store, MockLLM([answer]), "Japan", cfg))
    assert s.ok == 2, store.failure_reasons("scenario")
    seeds = {x.provenance.id: x for x in load_seeds()}
    for key, sc in iter_scenarios(store, "JPN"):
        seed = seeds[key.split("/")[1]]
        assert [(c.gender, c.pronouns) for c in sc.characters] == [(c.gender, c.pronouns) for c in seed.characters]
