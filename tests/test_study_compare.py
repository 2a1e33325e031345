"""Acceptance of one study and `clca compare` (issue 13), end to end on the embedded model at tiny sizes.

One module fixture runs a three-run study through the CLI (`clca study run`): the first run (dataset
variant no_filter) generates scenarios, dialogues, judgements and intentions; `dialogue_only` and
`control` reuse them (zero model calls in the shared stages, read from the stored stage counters) and
the base student's answers. Each run trains its adapter for one step and evaluates it. A fourth,
config-less run (`clca eval` of the first run's adapter on fewer questions) is the mismatched setup.

`clca compare` on the three runs is checked against the runs' stores and an independent computation:
table values = stored metric rows; paired differences and Wilcoxon p-values = scipy on the stored
per-item values, Holm across cultures recomputed here; CSV and Parquet round-trip; LaTeX and figure files
exist and are non-empty; the mismatched run is refused with exit 2 and one line.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clca.reuse import SHARED_STAGES
from clca.store import RunStore

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RUNS = ("no_filter", "dialogue_only", "control")
#: collaborative learning (the reflect stage and task 3): trained and evaluated in the same study, not compared
COLLAB = ("full_collab", "collab_only")
ITEMS = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]
CONTROL_TEXT = [
    ("Can you suggest a quick breakfast?", "Oatmeal with fruit takes five minutes and keeps you full."),
    ("How do I keep basil alive indoors?", "Give it a sunny window, water when the soil is dry, and pinch the tips."),
    ("Any tips for a long train ride?", "Bring snacks, a charged phone, a book and something warm to wear."),
    ("What is a good way to learn to juggle?", "Start with one ball, then two; practise the throw before the catch."),
]
#: the study: demo.yaml at tiny sizes; the judge keeps every dialogue, so dialogue_only has data to train on
STUDY = """\
study: tiny
base: {base}
run_root: {root}
set:
  scenarios: {{n: 2, max_tokens: 64}}
  roleplay: {{max_turns: 3, max_tokens: 48}}
  judge: {{max_tokens: 64}}
  intents: {{max_tokens: 48}}
  reflect: {{enabled: true, turns: 2, max_tokens: 32, statement_max_tokens: 96}}
  dataset: {{judge_rule: {{meta_not_aligned: [], quality_bad: []}}}}
  train: {{max_steps: 1, per_device_train_batch_size: 1, gradient_accumulation_steps: 1}}
  eval: {{personas: 2, items: {items}, bootstrap: 50}}
grid:
  variant:
    no_filter: {{dataset: {{variant: no_filter}}}}
    dialogue_only: {{dataset: {{variant: dialogue_only}}}}
    control: {{dataset: {{variant: control, control_path: {control}}}}}
    full_collab: {{dataset: {{variant: full_collab}}}}
    collab_only: {{dataset: {{variant: collab_only}}}}
"""
BASELINE = "no_filter:adapted:persona"


def _clca(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "clca.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=3600)  # fmt: skip


def _ok(*args: str, cwd: Path) -> str:
    r = _clca(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study")
    control = root / "control.jsonl"
    control.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
            for q, a in CONTROL_TEXT * 2
        )
    )
    body = STUDY.format(base=ROOT / "configs" / "demo.yaml", root=root / "runs", items=json.dumps(ITEMS),
                        control=control)  # fmt: skip
    (root / "study.yaml").write_text(body)
    plan = _ok("study", "plan", "study.yaml", cwd=root).splitlines()
    assert [line.split("\t")[0] for line in plan] == [*RUNS, *COLLAB] and plan[0].endswith("generates")
    _ok("study", "run", "study.yaml", cwd=root)
    runs = {name: root / "runs" / name for name in (*RUNS, *COLLAB)}
    # the mismatched setup: a run without a config (`clca eval`) of the first run's adapter, fewer questions
    other = root / "other"
    _ok("eval", "--model", f"embedded+lora:{runs['no_filter'] / 'adapter'}", "--alias", "adapted", "--personas",
        "2", "--run-dir", str(other), "--culture", "Egypt", "--compare", "United States", "--style", "persona",
        "--bootstrap", "50", "--quiet", "--item", "Q1", "--item", "Q2", "--item", "Q3", cwd=root)  # fmt: skip
    return {**runs, "other": other, "root": root}


@pytest.fixture(scope="module")
def compared(study: dict[str, Path]) -> Path:
    out = study["root"] / "cmp"
    printed = _ok("compare", *(str(study[n]) for n in RUNS), "--out", str(out), "--baseline", BASELINE,
                  "--resamples", "500", cwd=study["root"])  # fmt: skip
    assert printed.strip().splitlines()[-1] == str(out / "compare.html")
    return out


def _stored(run: Path) -> dict[str, dict]:
    """The run's ok metric rows of the main table (variant base), by key alias/style/culture/base/metric."""
    con = sqlite3.connect(run / "run.sqlite")
    rows = con.execute("SELECT key, data FROM artifacts WHERE kind='metric' AND status='ok'").fetchall()
    con.close()
    return {k: json.loads(d) for k, d in rows if k.count("/") == 4 and k.split("/")[3] == "base"}


def _kinds(run: Path) -> dict[str, dict[str, int]]:
    with RunStore(run) as store:
        return store.kinds()


def _rows(run: Path) -> list[dict]:
    out = []
    for split in ("train", "validation"):
        out += [json.loads(x) for x in (run / "dataset" / f"{split}.jsonl").read_text().splitlines()]
    return out


def test_shared_stages_are_reused_with_zero_model_calls(study: dict[str, Path]) -> None:
    gen = study["no_filter"]
    with RunStore(gen) as store:
        gen_calls = {s: store.get_meta(f"stage:{s}")["model_calls"] for s in (*SHARED_STAGES, "eval")}
    assert all(gen_calls[s] > 0 for s in SHARED_STAGES), gen_calls  # the first run generated
    kinds_gen = _kinds(gen)
    for name in (*RUNS[1:], *COLLAB):
        with RunStore(study[name]) as store:
            calls = {s: store.get_meta(f"stage:{s}")["model_calls"] for s in (*SHARED_STAGES, "eval")}
            reused = store.get_meta("reused_from")
        assert {s: calls[s] for s in SHARED_STAGES} == dict.fromkeys(SHARED_STAGES, 0), name
        assert reused["run_dir"] == str(gen) and reused["base_answers"] is True
        assert 0 < calls["eval"] < gen_calls["eval"]  # only the adapted student was asked; base answers copied
        kinds = _kinds(study[name])
        for kind in ("scenario", "episode", "turn", "judgement", "reflection_turn", "reflection", "intention"):
            assert kinds.get(kind) == kinds_gen.get(kind), (name, kind)
        assert reused["copied"]["episode"] == sum(kinds_gen["episode"].values())
    rows = {n: _rows(study[n]) for n in (*RUNS, *COLLAB)}
    assert {r["task"] for r in rows["dialogue_only"]} == {"dialogue"}  # only the dataset variant differs
    assert {r["task"] for r in rows["control"]} == {"control"}
    gen_dialogues = {r["id"] for r in rows["no_filter"] if r["task"] == "dialogue"}
    assert rows["dialogue_only"] and {r["id"] for r in rows["dialogue_only"]} <= gen_dialogues
    # collaborative learning: task 3 rows from the generator's reflections only; both runs trained and evaluated
    assert {r["task"] for r in rows["collab_only"]} == {"collaborative"}
    assert {"dialogue", "collaborative"} <= {r["task"] for r in rows["full_collab"]}
    with RunStore(gen) as store:
        norms = [n for rec in store.iter("reflection") for n in rec.data["statement"]["norms"]]
    statements = [r["messages"][-1]["content"] for r in rows["collab_only"] if r["id"].endswith("/statement")]
    assert statements and all(any(n in s for n in norms) for s in statements)
    for name in COLLAB:
        assert (study[name] / "adapter" / "train_result.json").is_file()
        assert any(k.startswith("adapted/") for k in _stored(study[name])), name
    # the base student's answers are the generator's, so its metric rows are too
    base = {k: v for k, v in _stored(gen).items() if k.startswith("base/")}
    for name in RUNS[1:]:
        assert {k: v for k, v in _stored(study[name]).items() if k.startswith("base/")} == base


def test_table_values_are_the_stored_metric_rows(study: dict[str, Path], compared: Path) -> None:
    comp = json.loads((compared / "comparison.json").read_text())
    assert [r["label"] for r in comp["runs"]] == list(RUNS)
    assert [r["dataset_variant"] for r in comp["runs"]] == list(RUNS)
    assert comp["cultures"] == ["EGY", "USA"]
    page = (compared / "compare.html").read_text(encoding="utf-8")
    cells = {}
    for culture, table in re.findall(r'<table class="compare-table" data-culture="(\w+)">(.*?)</table>', page, re.S):
        for ident, tr in re.findall(r'<tr data-row="([^"]+)"[^>]*>(.*?)</tr>', table, re.S):
            for metric, text in re.findall(r'data-metric="(\w+)">([^<]*)', tr):
                if text != "–":  # a metric this style has no value for
                    cells[(culture, html_lib.unescape(ident), metric)] = text
    n = 0
    for name in RUNS:
        for key, data in _stored(study[name]).items():
            alias, style, culture, _, metric = key.split("/")
            (row,) = [r for r in comp["rows"] if (r["run"], r["model"], r["style"], r["culture"]) ==
                      (name, alias, style, culture)]  # fmt: skip
            v = row["values"][metric]
            assert (v["value"], v["ci_low"], v["ci_high"]) == (data["mean"], data["lo"], data["hi"]), key
            assert cells[(culture, f"{name}:{alias}:{style}", metric)] == f"{data['mean']:.4f}", key
            n += 1
    assert n == sum(len(r["values"]) for r in comp["rows"]) == len(cells)
    # per culture: base persona + base cultural + adapted persona, per run; the base rows come first
    assert len(comp["rows"]) == 3 * len(RUNS) * 2
    groups = [r["group"] for r in comp["rows"] if r["culture"] == "EGY"]
    assert groups == ["base model"] * 6 + [f"dataset: {n}" for n in RUNS]


def _holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out independently of clca.report._stats."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def test_paired_statistics_equal_scipy_on_the_stored_values(study: dict[str, Path], compared: Path) -> None:
    comp = json.loads((compared / "comparison.json").read_text())
    stored = {name: _stored(study[name]) for name in RUNS}
    kinds = defaultdict(int)
    with_p = 0
    families: dict[tuple, list[dict]] = defaultdict(list)
    for p in comp["paired"]:
        kinds[p["kind"]] += 1
        (run, alias, style), (b_run, b_alias, b_style) = p["row"].split(":"), p["baseline"].split(":")
        a = stored[run][f"{alias}/{style}/{p['culture']}/base/{p['metric']}"]["per_item"]
        b = stored[b_run][f"{b_alias}/{b_style}/{p['culture']}/base/{p['metric']}"]["per_item"]
        assert sorted(a) == sorted(b) == ITEMS
        d = np.array([a[q] - b[q] for q in ITEMS])
        assert p["n_items"] == len(ITEMS)
        if p["unit"] == "questions":
            assert p["n"] == len(ITEMS) and p["diff"] == pytest.approx(d.mean(), abs=1e-12)
        else:  # individual accuracy, resampled over the run's two personas
            assert p["metric"] == "accuracy" and p["unit"] == "personas" and p["n"] == 2
        assert p["ci_low"] <= p["diff"] + 1e-12 and p["diff"] <= p["ci_high"] + 1e-12
        if np.any(d != 0):
            assert p["p"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
            with_p += 1
        else:
            assert p["p"] is None
        families[(p["kind"], p["row"], p["baseline"], p["metric"])].append(p)
    for s in comp["specificity"]:  # a pair's specificity tests (target vs comparison culture) share its family
        families[(s["kind"], s["row"], s["reference"], s["metric"])].append({**s, "culture": s["target"]})
    # each adapted row vs its run's base persona row, and every other row vs the chosen baseline row
    assert kinds["adapted vs base"] == len(RUNS) * 2 * len(comp["metrics"]) and kinds["vs baseline"] > 0
    assert with_p >= 10, comp["paired"]
    holm_checked = 0
    for fam in families.values():
        present = [p for p in fam if p["p"] is not None]
        assert {p["culture"] for p in fam} <= {"EGY", "USA"}
        for p, adj in zip(present, _holm([p["p"] for p in present]), strict=True):
            assert p["p_holm"] == pytest.approx(adj, rel=1e-12)
            holm_checked += len(present) >= 2
    assert holm_checked >= 4  # families of two or more tests, where Holm changes the p-values
    note = (compared / "summary.md").read_text(encoding="utf-8")
    assert "unit of resampling is the question" in note and "Holm" in note


def test_exports_round_trip(study: dict[str, Path], compared: Path) -> None:
    comp = json.loads((compared / "comparison.json").read_text())
    for name in ("metrics", "metrics_per_item", "distributions", "paired"):
        csv = pd.read_csv(compared / f"{name}.csv", dtype={"item": str, "option": str})
        pq = pd.read_parquet(compared / f"{name}.parquet")
        assert len(csv) == len(pq) > 0, name
        pd.testing.assert_frame_equal(csv, pq, check_dtype=False, check_exact=True)
    metrics = pd.read_csv(compared / "metrics.csv")
    values = {
        (r["run"], r["model"], r["style"], r["culture"], m): v for r in comp["rows"] for m, v in r["values"].items()
    }
    assert len(metrics) == len(values)
    for r in metrics.itertuples():
        v = values[(r.run, r.model, r.style, r.culture, r.metric)]
        assert (r.value, r.ci_low, r.ci_high) == (v["value"], v["ci_low"], v["ci_high"])
    per_item = pd.read_csv(compared / "metrics_per_item.csv", dtype={"item": str})
    for r in per_item.sample(n=40, random_state=0).itertuples():
        assert r.value == _stored(study[r.run])[f"{r.model}/{r.style}/{r.culture}/base/{r.metric}"]["per_item"][r.item]
    paired = pd.read_csv(compared / "paired.csv")
    assert list(paired["diff"]) == [p["diff"] for p in comp["paired"]]
    dist = pd.read_csv(compared / "distributions.csv", dtype={"option": str})
    assert set(dist["run"]) == set(RUNS) and set(dist["item"]) == set(ITEMS)
    con = sqlite3.connect(study["control"] / "run.sqlite")
    (data,) = con.execute("SELECT data FROM artifacts WHERE kind='metric' AND key='adapted/persona/EGY/specificity'")
    con.close()
    model = json.loads(data[0])["model"]
    mine = dist[(dist["run"] == "control") & (dist["model"] == "adapted") & (dist["culture"] == "EGY")]
    assert set(mine["item"]) == set(ITEMS)
    for item, grp in mine.groupby("item"):
        assert list(grp["model_share"]) == model[item]
        assert grp["survey_share"].sum() == pytest.approx(1.0)


def test_latex_and_figures_are_written(compared: Path) -> None:
    for name in ("table_main", "table_ablations"):
        tex = (compared / f"{name}.tex").read_text(encoding="utf-8")
        assert r"\begin{tabular}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    ablations = (compared / "table_ablations.tex").read_text(encoding="utf-8")
    assert all(f"& {v.replace('_', chr(92) + '_')} &" in ablations for v in RUNS)
    for fig in ("kl_per_culture", "ablations", "items_EGY"):
        assert (compared / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-", fig
        assert (compared / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
        assert len(pd.read_csv(compared / f"{fig}.csv")) > 0, fig
    abl = pd.read_csv(compared / "ablations.csv")
    assert set(abl["dataset_variant"]) == set(RUNS) and set(abl["model"]) == {"adapted"}


def test_a_different_setup_is_refused_in_one_line(study: dict[str, Path]) -> None:
    root = study["root"]
    r = _clca("compare", str(study["no_filter"]), str(study["other"]), "--out", str(root / "refused"), cwd=root)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "items (EGY)" in r.stderr and str(study["other"]) in r.stderr
    assert not (root / "refused").exists()
    r = _clca("compare", str(study["no_filter"]), str(study["other"]), "--allow-different", "--no-figures",
              "--out", str(root / "marked"), cwd=root)  # fmt: skip
    assert r.returncode == 0, r.stderr
    comp = json.loads((root / "marked" / "comparison.json").read_text())
    assert [x["differs"] for x in comp["runs"]] == [[], ["items"]]
    assert all(row["marked"] == (row["run"] == "other") for row in comp["rows"])
    # a run without a config: which survey scored it is unknown, so no per-item distributions are claimed
    assert pd.read_csv(root / "marked" / "distributions.csv").query("run == 'other'").empty
