"""The survey_* control training sets: rows in the evaluation's own prompt format, personas disjoint from the
evaluation's, shuffling that keeps the marginals, uniform options, another culture's answers (real bundled
reference, real respondent files from ../shared/data, real SQLite run store)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import clca
from clca.dataset import SURVEY_TASK, DatasetConfig, build_dataset, survey_rows
from clca.errors import ConfigError, DataError
from clca.store import RunStore
from clca.wvs import EvalConfig, Persona, build_messages, default_questionnaire
from clca.wvs._evaluate import eval_inputs, eval_personas

ITEMS = [f"Q{i}" for i in range(1, 11)]
ANY_PERSONA = Persona(id="x", country="EGY")  # the question turn does not depend on the persona
EV = EvalConfig(cultures=["Egypt"], compare=["United States"], items=ITEMS, personas=10)


def _rows(variant: str, ev: EvalConfig = EV, **cfg: object) -> list[dict]:
    rows, _ = survey_rows(DatasetConfig(variant=variant, tokenizer=None, **cfg), ev)  # type: ignore[arg-type]
    return rows


def _eval_systems(ev: EvalConfig, culture: str) -> set[str]:
    q, ref, survey = eval_inputs(ev)
    item = next(iter(q))
    return {
        build_messages("persona", p, item, "base", ev.seed)[0]["content"]
        for p in eval_personas(ev, ref, survey, culture)
    }


def test_direct_rows_are_the_evaluation_prompts_with_the_option_number() -> None:
    rows = _rows("survey_direct", control_rows=48)
    assert len(rows) == 48
    per_item = Counter(r["item"] for r in rows)
    assert set(per_item) == set(ITEMS) and max(per_item.values()) - min(per_item.values()) <= 1  # spread evenly
    q = default_questionnaire()
    for r in rows:
        assert r["task"] == SURVEY_TASK and r["culture"] == "EGY"
        system, user, answer = r["messages"]
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert "lives in Egypt" in system["content"]
        item = q.get(r["item"])
        assert user["content"] == build_messages("persona", ANY_PERSONA, item, "base", 0)[1]["content"]
        assert 1 <= int(answer["content"]) <= item.scale_length
    # the training personas are never evaluation personas (no system prompt in common)
    assert not {r["messages"][0]["content"] for r in rows} & _eval_systems(EV, "EGY")
    assert not any(r["scenario"].startswith("survey/EGY/m") for r in rows)  # evaluation ids are m0000...


def test_direct_answers_follow_the_reference_shares() -> None:
    """Many rows on one item: the answer shares approach Egypt's reference shares for it."""
    ev = EV.model_copy(update={"items": ["Q1"]})
    rows = _rows("survey_direct", ev, control_rows=600)
    _, ref, _ = eval_inputs(ev)
    dist = ref.countries["EGY"].items["Q1"]
    counts = Counter(int(r["messages"][-1]["content"]) for r in rows)
    for k, share in enumerate(dist.shares, start=1):
        assert abs(counts[k] / 600 - share) < 0.06


def test_shuffled_keeps_the_marginals_and_breaks_the_item_link() -> None:
    direct = _rows("survey_direct")
    shuffled = _rows("survey_shuffled")
    assert len(direct) == len(shuffled) == 192
    assert [r["messages"][:2] for r in direct] == [r["messages"][:2] for r in shuffled]  # the same prompts
    q = default_questionnaire()

    def by_scale(rows: list[dict]) -> dict[int, Counter]:
        out: dict[int, Counter] = {}
        for r in rows:
            out.setdefault(q.get(r["item"]).scale_length, Counter())[r["messages"][-1]["content"]] += 1
        return out

    assert by_scale(direct) == by_scale(shuffled)  # same answers, each valid for its item's scale
    changed = sum(a["messages"][-1] != b["messages"][-1] for a, b in zip(direct, shuffled, strict=True))
    assert changed > len(direct) // 3

    def per_item(rows: list[dict]) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for r in rows:
            out.setdefault(r["item"], Counter())[r["messages"][-1]["content"]] += 1
        return out

    assert per_item(direct) != per_item(shuffled)


def test_uniform_spreads_over_every_option() -> None:
    ev = EV.model_copy(update={"items": ["Q1"]})  # 4 options
    direct = _rows("survey_direct", ev, control_rows=400)
    uniform = _rows("survey_uniform", ev, control_rows=400)
    assert [r["messages"][:2] for r in direct] == [r["messages"][:2] for r in uniform]
    counts = Counter(r["messages"][-1]["content"] for r in uniform)
    assert set(counts) == {"1", "2", "3", "4"} and all(70 <= n <= 130 for n in counts.values())
    assert Counter(r["messages"][-1]["content"] for r in direct)["4"] < 40  # Egypt rarely answers 4 on Q1


def test_other_uses_the_control_culture() -> None:
    rows = _rows("survey_other", control_culture="United States")
    assert len(rows) == 192 and {r["culture"] for r in rows} == {"USA"}
    assert all("lives in United States" in r["messages"][0]["content"] for r in rows)
    assert not {r["messages"][0]["content"] for r in rows} & _eval_systems(EV, "USA")
    direct = _rows("survey_direct")
    assert Counter(r["messages"][-1]["content"] for r in rows) != Counter(r["messages"][-1]["content"] for r in direct)
    with pytest.raises(ConfigError, match="survey_other.*control_culture"):
        DatasetConfig(variant="survey_other")
    with pytest.raises(DataError, match="is the target culture EGY"):
        _rows("survey_other", control_culture="Egypt")


def test_transfer_uses_only_items_outside_the_evaluation() -> None:
    rows = _rows("survey_transfer", control_rows=100)
    items = {r["item"] for r in rows}
    assert items and not items & set(ITEMS) and len(rows) == 100
    full = EV.model_copy(update={"items": None})
    with pytest.raises(DataError) as e:
        _rows("survey_transfer", full)
    assert "survey_transfer" in str(e.value) and "\n" not in str(e.value)


def test_respondent_file_rows_are_other_respondents_real_answers(shared_data: Path) -> None:
    files = [str(shared_data / "cultural-trends" / f) for f in ("eg_wvs_wave7_v7_n303.csv", "us_wvs_wave7_v7_n303.csv")]
    ev = EV.model_copy(update={"survey": files})
    _, ref, survey = eval_inputs(ev)
    evaluated = {p.source for p in eval_personas(ev, ref, survey, "EGY")}
    rows = _rows("survey_direct", ev, control_rows=60)
    assert len(rows) == 60
    q = default_questionnaire()
    by_source = {f"{Path(r.source).name}:{r.line}": r for r in survey.of("EGY")}
    for row in rows:
        source = row["scenario"].split("/t-")[1]
        stem, line = source.rsplit("-", 1)
        key = f"{stem}.csv:{line}"
        assert key not in evaluated  # never an evaluation persona
        real = by_source[key].answers[row["item"]]
        item = q.get(row["item"])
        assert int(row["messages"][-1]["content"]) == item.codes.index(real) + 1  # the respondent's own answer
    transfer = _rows("survey_transfer", ev, control_rows=40)
    assert {r["item"] for r in transfer} and not {r["item"] for r in transfer} & set(ITEMS)


def test_build_dataset_counts_rows_per_variant_from_the_stored_eval_config(tmp_path: Path) -> None:
    """`clca dataset build` on a run directory: the survey rows come from the run's stored eval config."""
    with RunStore(tmp_path / "run") as st:
        st.set_meta("config", {"eval": json.loads(EV.model_dump_json())})
        info = build_dataset(
            st,
            DatasetConfig(variant="survey_uniform", control_rows=50, tokenizer=None),
            tmp_path / "ds",
            progress=False,
        )
    assert sum(info.rows.values()) == 50 and info.rows["validation"] > 0  # validation: held-out personas
    assert info.rows_by_task["train"] == {SURVEY_TASK: info.rows["train"]}
    lines = (tmp_path / "ds" / "train.jsonl").read_text().splitlines()
    assert len(lines) == info.rows["train"]
    from clca.report._train import read_datasets

    summary = read_datasets(tmp_path)
    assert summary[0].variant == "survey_uniform" and summary[0].rows_by_task["train"] == {"survey": info.rows["train"]}


def test_survey_rows_are_draws_and_survive_dedup(tmp_path: Path) -> None:
    """Personas described by sex and age share prompts, so rows repeat (persona prompt, item, answer); each is a
    draw of the culture's shares and dedup keeps them all (dropping repeats flattened the shares toward uniform)."""
    ref = json.loads((Path(clca.__file__).parent / "data" / "wvs" / "reference.json").read_text())
    egy = ref["countries"]["EGY"]
    egy["marginals"] = {k: v for k, v in egy["marginals"].items() if k in ("sex", "age")}
    ref["countries"] = {"EGY": egy}
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    ev = EvalConfig(cultures=["Egypt"], items=ITEMS, personas=2, reference=str(tmp_path / "ref.json"))
    with RunStore(tmp_path / "run") as st:
        info = build_dataset(
            st, DatasetConfig(variant="survey_direct", control_rows=120, val_fraction=0.0, tokenizer=None),
            tmp_path / "ds", eval_cfg=ev, progress=False,
        )  # fmt: skip
    rows = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    prompts = Counter(json.dumps(r["messages"]) for r in rows)
    assert info.rows["train"] == len(rows) == 120 and max(prompts.values()) > 1
    q1 = Counter(r["messages"][-1]["content"] for r in rows if r["item"] == "Q1")
    assert q1.most_common(1)[0][1] >= 10  # Egypt answers Q1 with option 1 nearly always: 12 rows, not 1 per answer


def test_dataset_build_cli_survey_variants_and_the_transfer_refusal(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    for name, ev in (("some", EV), ("all", EV.model_copy(update={"items": None}))):
        with RunStore(tmp_path / name) as st:
            st.set_meta("config", {"eval": json.loads(ev.model_dump_json())})

    def build(run: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "clca.cli.main", "dataset", "build", "--run-dir", str(tmp_path / run),
               "--tokenizer", "none", "--quiet", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    r = build("some", "--out", str(tmp_path / "ds"), "--variant", "survey_other", "--control-culture", "United States",
              "--control-rows", "20")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "dataset survey_other:" in r.stdout and "{'survey': " in r.stdout
    rows = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    assert {x["culture"] for x in rows} == {"USA"} and len(rows) + len(
        (tmp_path / "ds" / "validation.jsonl").read_text().splitlines()
    ) == 20
    r = build("all", "--out", str(tmp_path / "ds2"), "--variant", "survey_transfer")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "survey_transfer" in r.stderr
    assert not (tmp_path / "ds2").exists()  # nothing half-written
