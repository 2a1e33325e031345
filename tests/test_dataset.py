"""Dataset builder: rows of both tasks, split, variants, mixing, exports (real RunStore, real tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dataset_store import SCRIPT, make_run

from clca.dataset import DatasetConfig, build_dataset, collect_rows, load_control, split_by_scenario
from clca.errors import ConfigError, DataError

NO_TOK = {"tokenizer": None}


def _rows(tmp_path: Path, **cfg) -> list[dict]:
    store = make_run(tmp_path / "run")
    rows, _, _ = collect_rows(store, DatasetConfig(**{**NO_TOK, **cfg}), progress=False)
    return rows


def _by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


def test_dialogue_rows_from_each_side_exactly(tmp_path: Path) -> None:
    rows = _by_id(_rows(tmp_path, variant="dialogue_only"))
    side0 = rows["JPN/seed-000/s0/side0"]["messages"]
    side1 = rows["JPN/seed-000/s0/side1"]["messages"]
    sfx = " (sample 0, scenario 0)"
    # side 0 opens: a user cue is inserted; its turns are assistant turns; the "none" turn is dropped;
    # the partner's two consecutive turns are merged into one user message
    assert [(m["role"], m["content"]) for m in side0[1:]] == [
        ("user", "(Yui Kondo is there with you. You speak first.)"),
        ("assistant", SCRIPT[0][2] + sfx),
        ("user", SCRIPT[1][2] + sfx + "\n\n[non-verbal] bows slightly"),
        ("assistant", SCRIPT[4][2] + sfx),
        ("user", SCRIPT[5][2] + sfx),
        ("assistant", "[leaves the conversation]"),
    ]
    # side 1: the partner's closing "leave" is a trailing user turn and is dropped
    assert [(m["role"], m["content"]) for m in side1[1:]] == [
        ("user", SCRIPT[0][2] + sfx),
        ("assistant", SCRIPT[1][2] + sfx + "\n\n[non-verbal] bows slightly"),
        ("user", SCRIPT[4][2] + sfx),
        ("assistant", SCRIPT[5][2] + sfx),
    ]
    sys0, sys1 = side0[0], side1[0]
    assert sys0["role"] == sys1["role"] == "system"
    # each side sees its own goal and secret only, plus the culture
    assert "goal A0" in sys0["content"] and "Haruto lost his job" in sys0["content"]
    assert "goal B0" not in sys0["content"] and "leave town" not in sys0["content"]
    assert "goal B0" in sys1["content"] and "leave town" in sys1["content"]
    assert "goal A0" not in sys1["content"] and "lost his job" not in sys1["content"]
    assert "Japan" in sys0["content"] and rows["MEX/seed-000/s0/side0"]["culture"] == "MEX"


def test_dialogue_options_keep_assistant_first_and_no_culture(tmp_path: Path) -> None:
    rows = _by_id(_rows(tmp_path, variant="dialogue_only", assistant_first="keep", culture_context="none"))
    msgs = rows["JPN/seed-000/s0/side0"]["messages"]
    assert msgs[1]["role"] == "assistant"
    assert "Japan" not in msgs[0]["content"]


def test_intent_rows_history_up_to_the_turn(tmp_path: Path) -> None:
    rows = _by_id(_rows(tmp_path, variant="intent_only"))
    ep = "JPN/seed-000/s1"
    assert sorted(k for k in rows if k.startswith(ep + "/")) == [f"{ep}/t000", f"{ep}/t001", f"{ep}/t004"]
    r = rows[f"{ep}/t004"]
    user, answer = r["messages"]
    assert (user["role"], answer["role"]) == ("user", "assistant") and len(r["messages"]) == 2
    assert "Haruto Sato: " + SCRIPT[4][2] in user["content"]  # the turn itself is the last line
    assert SCRIPT[5][2] not in user["content"]  # nothing after it
    assert "What does Haruto Sato intend" in user["content"] and "Japan" in user["content"]
    assert "goal A0" not in user["content"] and "secret" not in user["content"].lower()  # no role-play info
    assert answer["content"] == (
        "Intention: prepare the ground for a request (1)\n"
        "Cultural relevance: indirect requests avoid imposing on others"
    )
    generic = rows[f"{ep}/t001"]["messages"][1]["content"]
    assert generic.startswith("Intention: return the greeting") and "not specific to this culture" in generic
    only_cultural = _by_id(_rows(tmp_path / "b", variant="intent_only", intent_include_generic=False))
    assert f"{ep}/t001" not in only_cultural and f"{ep}/t000" in only_cultural


def test_variants_contain_what_their_names_say(tmp_path: Path) -> None:
    store = make_run(tmp_path / "run")
    rejected = {"JPN/seed-001/s1", "JPN/seed-003/s1", "MEX/seed-001/s1", "MEX/seed-003/s1"}

    def rows(**kw):
        return collect_rows(store, DatasetConfig(**{**NO_TOK, **kw}), progress=False)[0]

    full, dia, inten, nof = (
        rows(),
        rows(variant="dialogue_only"),
        rows(variant="intent_only"),
        rows(variant="no_filter"),
    )
    assert {r["task"] for r in full} == {"dialogue", "intent"}
    assert {r["task"] for r in dia} == {"dialogue"} and {r["task"] for r in inten} == {"intent"}
    assert len(full) == len(dia) + len(inten)
    assert not rejected & {r["episode"] for r in full}
    assert rejected <= {r["episode"] for r in nof}
    assert len(nof) == len(full) + len(rejected) * (2 + 3)  # two sides + three intentions per episode
    control = tmp_path / "control.jsonl"
    control.write_text(
        json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]})
        + "\n"
    )
    ctl = rows(variant="control", control_path=control)
    assert [r["task"] for r in ctl] == ["control", "control"] and ctl[1]["messages"][1]["content"] == "6"


def test_control_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{oops\n')
    with pytest.raises(DataError, match=r"c\.jsonl: line 2: not valid JSON"):
        load_control(bad)
    bad.write_text('{"messages": [{"role": "assistant", "content": "b"}]}\n')
    with pytest.raises(DataError, match=r"c\.jsonl: line 1: messages must alternate"):
        load_control(bad)
    with pytest.raises(ConfigError, match="control_path"):
        DatasetConfig(variant="control")


def test_split_is_by_scenario(tmp_path: Path) -> None:
    rows = _rows(tmp_path, variant="no_filter")
    train, val, train_sc, val_sc = split_by_scenario(rows, 0.25, seed=3)
    assert len(val_sc) == 2 and len(train_sc) == 6  # 8 scenarios
    assert not {r["scenario"] for r in train} & {r["scenario"] for r in val}
    assert {r["scenario"] for r in val} == set(val_sc)
    assert len(train) + len(val) == len(rows)
    assert split_by_scenario(rows, 0.25, seed=3)[3] == val_sc  # seeded


@pytest.mark.slow
def test_build_writes_loadable_exports(tmp_path: Path) -> None:
    from datasets import load_dataset, load_from_disk

    store = make_run(tmp_path / "run")
    out = tmp_path / "ds"
    info = build_dataset(store, DatasetConfig(val_fraction=0.25), out, progress=False)
    assert info.rows["train"] > 0 and info.rows["validation"] > 0
    assert not set(info.scenarios["train"]) & set(info.scenarios["validation"])
    # messages JSONL
    dd = load_dataset("json", data_files={s: str(out / f"{s}.jsonl") for s in ("train", "validation")})
    assert len(dd["train"]) == info.rows["train"] and dd["train"][0]["messages"][-1]["role"] == "assistant"
    val_scenarios = {r["scenario"] for r in dd["validation"]}
    assert val_scenarios == set(info.scenarios["validation"])
    # Hugging Face datasets directory
    hf = load_from_disk(str(out / "hf"))
    assert hf["validation"].num_rows == info.rows["validation"]
    assert hf["train"]["messages"] == dd["train"]["messages"]
    # LLaMA-Factory ShareGPT + dataset_info.json
    ds_info = json.loads((out / "sharegpt" / "dataset_info.json").read_text())
    entry = ds_info["clca_full_train"]
    assert entry["formatting"] == "sharegpt" and entry["columns"]["messages"] == "conversations"
    sg = load_dataset("json", data_files=str(out / "sharegpt" / entry["file_name"]), split="train")
    assert len(sg) == info.rows["train"]
    conv = sg[0]["conversations"]
    assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
    # token statistics with the embedded tokenizer
    st = info.token_stats["train"]["all"]
    assert st["rows"] == info.rows["train"] and 0 < st["assistant_tokens"] < st["tokens_total"]
    assert json.loads((out / "info.json").read_text())["rows"] == info.rows


def test_build_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    store = make_run(tmp_path / "run", n_scenarios=2)
    out = tmp_path / "ds"
    build_dataset(store, DatasetConfig(**NO_TOK), out, progress=False)
    before = (out / "train.jsonl").read_text()
    with pytest.raises(ConfigError, match="already exists"):
        build_dataset(store, DatasetConfig(**NO_TOK), out, progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(DataError):
        build_dataset(store, DatasetConfig(variant="control", control_path=bad, **NO_TOK), out, overwrite=True)
    assert (out / "train.jsonl").read_text() == before  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers
    build_dataset(store, DatasetConfig(variant="intent_only", **NO_TOK), out, overwrite=True, progress=False)
    assert "dialogue" not in (out / "train.jsonl").read_text()


def test_dedup_weights_and_order(tmp_path: Path) -> None:
    store = make_run(tmp_path / "run", n_scenarios=2, cultures=("JPN",))
    # a second episode identical to s0 of scenario 0: its rows are duplicates (ids differ, messages do not)
    for r in list(store.iter("turn", parent="JPN/seed-000/s0")):
        store.put("turn", r.key.replace("/s0/", "/s7/"), r.data, parent="JPN/seed-000/s7")
    for r in list(store.iter("intention", parent="JPN/seed-000/s0")):
        store.put("intention", r.key.replace("/s0/", "/s7/"), r.data, parent="JPN/seed-000/s7")
    store.put("episode", "JPN/seed-000/s7", {"scenario_key": "JPN/seed-000", "culture": "JPN"})
    store.put("judgement", "JPN/seed-000/s7", store.get("judgement", "JPN/seed-000/s0").data)
    base = DatasetConfig(val_fraction=0.0, order="concat", **NO_TOK)
    info = build_dataset(store, base, tmp_path / "a", progress=False)
    assert info.duplicates_removed == 5  # 2 sides + 3 intentions
    n = info.rows_by_task["train"]
    weighted = base.model_copy(update={"weights": {"dialogue": 2.0, "intent": 0.5}})
    info2 = build_dataset(store, weighted, tmp_path / "b", progress=False)
    assert info2.rows_by_task["train"] == {"dialogue": 2 * n["dialogue"], "intent": round(0.5 * n["intent"])}
    tasks = [json.loads(x)["task"] for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
    assert tasks == sorted(tasks)  # concat: task by task
    inter = base.model_copy(update={"order": "interleave"})
    a = build_dataset(store, inter, tmp_path / "c", progress=False)
    b = build_dataset(store, inter, tmp_path / "d", progress=False)
    ta = (tmp_path / "c" / "train.jsonl").read_text()
    assert ta == (tmp_path / "d" / "train.jsonl").read_text() and a.rows == b.rows  # seeded
    order = [json.loads(x)["task"] for x in ta.splitlines()]
    assert order != sorted(order) and sorted(order) == sorted(tasks)


def test_empty_run_is_a_clear_error(tmp_path: Path) -> None:
    from clca.store import RunStore

    with pytest.raises(DataError, match="no training rows"):
        build_dataset(RunStore(tmp_path / "run"), DatasetConfig(**NO_TOK), tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_no_filter_counts_dialogues_without_intentions(tmp_path: Path) -> None:
    """A dialogue without any stored intention is counted in `skipped`, not dropped from task 2 silently."""
    store = make_run(tmp_path / "run")
    for r in list(store.iter("intention", parent="JPN/seed-001/s1")):
        store.delete("intention", r.key)
    rows, report, _ = collect_rows(store, DatasetConfig(**NO_TOK, variant="no_filter"), progress=False)
    assert report.skipped.get("dialogue without intentions") == 1
    assert not [r for r in rows if r["episode"] == "JPN/seed-001/s1" and r["task"] == "intent"]
    assert [r for r in rows if r["episode"] == "JPN/seed-001/s1" and r["task"] == "dialogue"]
