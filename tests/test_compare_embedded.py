"""`clca compare` on real evaluations of the embedded model (tiny sizes), without the generation stages:
a LoRA adapter is trained for 2 steps on a small generic dataset (`clca dataset build --variant control`
+ `clca train run`), and `clca eval` evaluates the base model and the adapted one into run directories.
Checks: the table values are the stored metric rows, the paired statistics equal scipy on the stored
per-item values, exports are written, a different setup (personas) is refused with exit 2."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clca.store import RunStore

CONTROL_TEXT = [
    ("Can you suggest a quick breakfast?", "Oatmeal with fruit takes five minutes and keeps you full."),
    ("How do I keep basil alive indoors?", "Give it a sunny window, water when the soil is dry, and pinch the tips."),
    (
        "What is a good way to learn to juggle?",
        "Start with one ball, then two, and practise the throw before the catch.",
    ),
    ("Any tips for a long train ride?", "Bring snacks, a charged phone, a book and something warm to wear."),
]
ITEMS = [a for q in ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6") for a in ("--item", q)]
EVAL = ["--culture", "Egypt", "--compare", "United States", "--style", "persona", "--style", "cultural",
        "--bootstrap", "50", "--quiet", *ITEMS]  # fmt: skip

ADAPTED = ["--style", "persona"] + [a for a in EVAL if a not in ("--style", "persona", "cultural")]

pytestmark = pytest.mark.slow


def _clca(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    r = subprocess.run([sys.executable, "-m", "clca.cli.main", *args], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=3600)  # fmt: skip
    return r


def _ok(*args: str, cwd: Path) -> None:
    r = _clca(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embedded")
    control = root / "control.jsonl"
    control.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
            for q, a in CONTROL_TEXT * 3
        )
    )
    with RunStore(root / "empty"):  # a run with no dialogues: the control data alone
        pass
    _ok("dataset", "build", "--run-dir", str(root / "empty"), "--out", str(root / "data"), "--variant", "control",
        "--control", str(control), "--tokenizer", "none", "--quiet", cwd=root)  # fmt: skip
    _ok("train", "run", str(root / "data"), "--out", str(root / "adapter"), "--max-steps", "2", "--max-length", "128",
        "--batch-size", "2", "--lr", "0.01", "--quiet", cwd=root)  # fmt: skip
    out = {}
    for name, personas in (("two", "2"), ("three", "3")):
        run = root / name
        _ok("eval", "--model", "embedded", "--alias", "base", "--personas", personas, "--run-dir", str(run), *EVAL,
            cwd=root)  # fmt: skip
        _ok("eval", "--model", f"embedded+lora:{root / 'adapter'}", "--alias", "adapted", "--personas", personas,
            "--run-dir", str(run), *ADAPTED, cwd=root)  # fmt: skip
        out[name] = run
    return out


def _metric_rows(run: Path) -> dict[str, dict]:
    con = sqlite3.connect(run / "run.sqlite")
    rows = con.execute("SELECT key, data FROM artifacts WHERE kind='metric' AND status='ok'").fetchall()
    con.close()
    return {k: json.loads(d) for k, d in rows if k.count("/") == 4 and k.split("/")[3] == "base"}


def test_compare_embedded_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    t0 = time.perf_counter()
    r = _clca("compare", str(runs["two"]), "--out", str(out), "--baseline", "two:base:cultural", cwd=tmp_path)
    print(f"\nclca compare (1 embedded-model run, figures included): {time.perf_counter() - t0:.1f}s")
    assert r.returncode == 0, r.stderr
    comp = json.loads((out / "comparison.json").read_text())
    stored = _metric_rows(runs["two"])
    assert len(stored) == sum(len(x["values"]) for x in comp["rows"]) > 20
    for key, data in stored.items():
        alias, style, culture, _, metric = key.split("/")
        (row,) = [x for x in comp["rows"] if (x["model"], x["style"], x["culture"]) == (alias, style, culture)]
        v = row["values"][metric]
        assert (v["value"], v["ci_low"], v["ci_high"]) == (data["mean"], data["lo"], data["hi"])
    checked = 0
    for p in comp["paired"]:
        row, base = p["row"].split(":"), p["baseline"].split(":")
        a = stored[f"{row[1]}/{row[2]}/{p['culture']}/base/{p['metric']}"]["per_item"]
        b = stored[f"{base[1]}/{base[2]}/{p['culture']}/base/{p['metric']}"]["per_item"]
        d = np.array([a[q] - b[q] for q in sorted(a)])
        assert p["diff"] == pytest.approx(d.mean(), abs=1e-12) and p["n_items"] == len(d) == 6
        if np.any(d != 0):
            assert p["p"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
            checked += 1
    assert checked >= 4, comp["paired"]
    assert {p["kind"] for p in comp["paired"]} == {"adapted vs base", "vs baseline"}
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == len(stored)
    for f in ("table_main.tex", "table_ablations.tex", "kl_per_culture.pdf", "kl_per_culture.png",
              "kl_per_culture.csv", "ablations.pdf", "ablations.png", "metrics.parquet", "summary.md",
              "compare.html"):  # fmt: skip
        assert (out / f).stat().st_size > 0, f
    # a `clca eval` run records no run config: which survey it was scored against is unknown, so no
    # per-item survey distributions (and no small-multiples figure) are claimed for it
    assert pd.read_csv(out / "distributions.csv").empty and not (out / "items_EGY.pdf").exists()


def test_compare_refuses_other_personas(runs: dict[str, Path], tmp_path: Path) -> None:
    r = _clca("compare", str(runs["two"]), str(runs["three"]), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert r.returncode == 2 and "eval.personas" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    r = _clca("compare", str(runs["two"]), str(runs["three"]), "--allow-different", "--no-figures", "--out",
              str(tmp_path / "y"), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    comp = json.loads((tmp_path / "y" / "comparison.json").read_text())
    assert [x["differs"] for x in comp["runs"]] == [[], ["personas"]]
