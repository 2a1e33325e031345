"""`clca compare` on real runs of the embedded model at a tiny size.

One full run of the demo config is built once (module fixture). Two variants are derived from it
cheaply, the way a study shares its generation: the run directory is copied and re-run with another
config, so the stored scenarios, dialogues, judgements and intentions are reused with zero model
calls (asserted) and only what the change touches is computed again:
  - control: dataset.variant=control (the paper's control ablation; generic conversations written here),
    so the dataset is rebuilt, the adapter retrained and the adapted student evaluated again;
  - personas3: eval.personas=3, a different evaluation setup (refused by compare unless --allow-different).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
TINY = [
    "scenarios.n=2",
    "roleplay.max_turns=3",
    "roleplay.max_tokens=48",
    "judge.max_tokens=64",
    "intents.max_tokens=48",
    "train.max_steps=4",
    "train.save_steps=2",
    "train.num_train_epochs=1",
    "train.max_length=384",
    "eval.personas=2",
    'eval.styles=["persona","cultural"]',
    'eval.items=["Q1","Q2","Q3","Q4","Q5","Q6"]',
    "eval.bootstrap=50",
]
SHARED_STAGES = ("scenarios", "roleplay", "judge", "intents")
CONTROL_TEXT = [
    ("Can you suggest a quick breakfast?", "Oatmeal with fruit takes five minutes and keeps you full."),
    ("How do I keep basil alive indoors?", "Give it a sunny window, water when the soil is dry, and pinch the tips."),
    (
        "What is a good way to learn to juggle?",
        "Start with one ball, then two, and practise the throw before the catch.",
    ),
    ("Any tips for a long train ride?", "Bring snacks, a charged phone, a book and something warm to wear."),
]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "TQDM_DISABLE": "1"}


def _clca(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clca.cli.main", *args], capture_output=True, text=True, env=_env(), cwd=cwd,
        timeout=3600,
    )  # fmt: skip


def _run(run_dir: Path, *extra: str) -> None:
    args = ["run", str(DEMO), "--run-dir", str(run_dir)]
    for s in [*TINY, *extra]:
        args += ["--set", s]
    r = _clca(*args)
    assert r.returncode == 0, r.stderr[-3000:]


def _derive(base: Path, run_dir: Path, *, drop_adapted: bool) -> None:
    """Copy a finished run so that another config can continue it: its stored rows stay (and are reused),
    the config binding is dropped; with drop_adapted, the dataset, adapter and adapted answers go too."""
    shutil.copytree(base, run_dir, ignore=shutil.ignore_patterns("report", "*.lock"))
    con = sqlite3.connect(run_dir / "run.sqlite")
    con.execute("DELETE FROM meta WHERE name IN ('config', 'config_hash') OR name LIKE 'stage:%'")
    if drop_adapted:
        con.execute("DELETE FROM artifacts WHERE kind IN ('survey_answer', 'metric') AND key LIKE 'adapted/%'")
        shutil.rmtree(run_dir / "dataset")
        shutil.rmtree(run_dir / "adapter")
    con.commit()
    con.close()


def _stage_calls(run_dir: Path) -> dict[str, int]:
    con = sqlite3.connect(run_dir / "run.sqlite")
    rows = con.execute("SELECT name, value FROM meta WHERE name LIKE 'stage:%'").fetchall()
    con.close()
    return {n.split(":", 1)[1]: json.loads(v)["model_calls"] for n, v in rows}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study")
    full = root / "demo"
    _run(full)
    control_file = root / "control.jsonl"
    control_file.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
            for q, a in CONTROL_TEXT * 3
        )
    )
    control = root / "control"
    _derive(full, control, drop_adapted=True)
    _run(control, "dataset.variant=control", f"dataset.control_path={control_file}")
    calls = _stage_calls(control)
    assert all(calls[s] == 0 for s in SHARED_STAGES), calls
    personas3 = root / "personas3"
    _derive(full, personas3, drop_adapted=False)
    _run(personas3, "eval.personas=3")
    assert all(_stage_calls(personas3)[s] == 0 for s in SHARED_STAGES)
    return {"demo": full, "control": control, "personas3": personas3}


def _metric_rows(run: Path) -> dict[str, dict]:
    con = sqlite3.connect(run / "run.sqlite")
    rows = con.execute("SELECT key, data FROM artifacts WHERE kind='metric' AND status='ok'").fetchall()
    con.close()
    return {k: json.loads(d) for k, d in rows if k.count("/") == 4 and k.split("/")[3] == "base"}


def test_compare_real_runs(study: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    t0 = time.perf_counter()
    r = _clca("compare", str(study["demo"]), str(study["control"]), "--out", str(out), cwd=tmp_path)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    print(f"clca compare of 2 embedded-model runs: {seconds:.1f}s")
    comp = json.loads((out / "comparison.json").read_text())
    # the table values are the runs' stored metric rows
    n = 0
    for label in ("demo", "control"):
        for key, data in _metric_rows(study[label]).items():
            alias, style, culture, _, metric = key.split("/")
            (row,) = [
                x
                for x in comp["rows"]
                if (x["run"], x["model"], x["style"], x["culture"]) == (label, alias, style, culture)
            ]
            v = row["values"][metric]
            assert (v["value"], v["ci_low"], v["ci_high"]) == (data["mean"], data["lo"], data["hi"])
            n += 1
    assert n > 20
    groups = [x["group"] for x in comp["rows"] if x["culture"] == "EGY"]
    assert groups[:4] == ["base model"] * 4 and set(groups[4:]) == {"dataset: no_filter", "dataset: control"}
    # paired statistics: adapted vs base of each run, against scipy on the stored per-item values
    checked = 0
    for p in comp["paired"]:
        run = p["row"].split(":")[0]
        rows = _metric_rows(study[run])
        a = rows[f"adapted/persona/{p['culture']}/base/{p['metric']}"]["per_item"]
        b = rows[f"base/persona/{p['culture']}/base/{p['metric']}"]["per_item"]
        d = np.array([a[q] - b[q] for q in sorted(a)])
        assert p["diff"] == pytest.approx(d.mean(), abs=1e-12) and p["unit"] == "questions"
        if np.any(d != 0):
            assert p["p"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
            checked += 1
    assert checked >= 4
    # exports
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == n
    for f in ("table_main.tex", "table_ablations.tex", "kl_per_culture.pdf", "kl_per_culture.png", "ablations.pdf",
              "items_EGY.pdf", "items_EGY.png", "items_EGY.csv", "distributions.parquet", "summary.md"):  # fmt: skip
        assert (out / f).stat().st_size > 0, f
    dist = pd.read_csv(out / "distributions.csv", dtype={"option": str})
    assert set(dist["run"]) == {"demo", "control"} and (dist["survey_share"] >= 0).all()


def test_compare_refuses_other_setup_of_real_runs(study: dict[str, Path], tmp_path: Path) -> None:
    r = _clca("compare", str(study["demo"]), str(study["personas3"]), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert r.returncode == 2 and "eval.personas (3 vs 2)" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    r = _clca(
        "compare", str(study["demo"]), str(study["personas3"]), "--allow-different", "--out", str(tmp_path / "y"),
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    comp = json.loads((tmp_path / "y" / "comparison.json").read_text())
    assert [x["differs"] for x in comp["runs"]] == [[], ["personas"]]
