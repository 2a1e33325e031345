"""Tao et al.'s GPT-4 answers to the ten cultural-map items (eight countries) through clca's projection,
against their published GPT-4 positions: Spearman and mean absolute difference per axis.

Data (not bundled; ../shared/data/ethogpt-db, from EthoGPT-DB, MIT): ChatGPT_Survey_SelectiveCountries.csv
(one GPT-4 answer per country and IVS item) and ChatGPT_Indices_Countries.csv (GPT-4's positions per
country as Tao et al. computed them, z-scaled like the published map).

    python benchmarks/iwmap_tao.py [DATA_DIR]
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from clca.wvs import load_reference, resolve_country
from clca.wvs._iwmap import AXES, vector, y002
from clca.wvs._iwplace import build_map

# Tao et al.'s prompts put two scales the other way round from the IVS coding (1 = not at all ... 4 = very)
REVERSED = {"G006": 5, "A008": 5}
NOT_COUNTRIES = {"Germany West", "ChatGPT_Global"}


def gpt4_values(path: Path) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Country -> the ten variables from GPT-4's answers; and the answers that gave no number (refusals)."""
    vals: dict[str, dict[str, float]] = {}
    unparsed: list[str] = []
    with path.open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            c, qid, a = resolve_country(r["Country/Territory"]), r["Question_ID"], r["Answer"].strip()
            v = vals.setdefault(c, {})
            if qid == "Y003":  # the qualities chosen; their list offers no "determination"
                chosen = {x.strip(" .").lower() for x in a.split(",")}
                v[qid] = float(("independence" in chosen) - ("religious faith" in chosen) - ("obedience" in chosen))
                continue
            if qid == "Y002":
                n = [int(x) for x in re.findall(r"\d", a)[:2]]
                p = y002(*n) if len(n) == 2 else None
                if p is not None:
                    v[qid] = p
                continue
            m = re.match(r"\s*(\d+)", a)
            if not m:
                unparsed.append(f"{c} {qid}")
                continue
            x = int(m.group(1))
            v[qid] = float(REVERSED[qid] - x if qid in REVERSED else x)
    return vals, unparsed


def published(path: Path) -> dict[str, np.ndarray]:
    with path.open(encoding="utf-8") as f:
        return {
            resolve_country(r["Country/Territory"]): np.array(
                [float(r["Traditional_vs_Secular_Transformed"]), float(r["Survival_vs_Self_Expression_Transformed"])]
            )
            for r in csv.DictReader(f)
            if r["Country/Territory"] not in NOT_COUNTRIES
        }


def agreement(data: Path) -> dict[str, Any]:
    """Per axis: Spearman and mean absolute difference between clca's projection of the answers (the default
    map: calibrated on the bundled reference's countries) and Tao et al.'s positions."""
    vals, unparsed = gpt4_values(data / "ChatGPT_Survey_SelectiveCountries.csv")
    theirs = published(data / "ChatGPT_Indices_Countries.csv")
    cmap = build_map(load_reference())
    countries = sorted(c for c in vals if c in theirs)
    ours = np.array([cmap.projection.project(vector(vals[c])) for c in countries])
    ref = np.array([theirs[c] for c in countries])
    out: dict[str, Any] = {"countries": countries, "unparsed": unparsed, "projection": cmap.projection.describe()}
    for k, axis in enumerate(AXES):
        out[axis] = {
            "spearman": float(spearmanr(ours[:, k], ref[:, k]).statistic),
            "mad": float(np.mean(np.abs(ours[:, k] - ref[:, k]))),
        }
    out["positions"] = {c: (ours[i].round(3).tolist(), ref[i].round(3).tolist()) for i, c in enumerate(countries)}
    return out


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "data" / "ethogpt-db"
    res = agreement(data)
    print(res["projection"])
    print(f"{len(res['countries'])} countries; answers without a number (filled with the calibration mean): "
          f"{len(res['unparsed'])}: {', '.join(res['unparsed'])}")  # fmt: skip
    for c, (ours, theirs) in res["positions"].items():
        print(f"  {c}: clca {ours}  Tao et al. {theirs}")
    for axis in AXES:
        print(f"{axis}: Spearman {res[axis]['spearman']:.3f}, mean absolute difference {res[axis]['mad']:.3f}")


if __name__ == "__main__":
    main()
