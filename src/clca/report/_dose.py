"""Dose-response of a comparison: KL to the target and to the comparison cultures against training steps.

Runs whose stored configs are equal except for `train.max_steps` (and names and paths; `RunInfo.dose_key`)
form a dose series when at least two of them train for different numbers of steps. Each series is drawn as
KL (mean over questions with its stored 95 % interval) against steps, one line per culture and prompt
style of the adapted student; the base model of the series' first run stands at 0 steps. Below it, the
specificity against base (`_specificity`): the difference-in-differences of KL (target minus comparison
culture) against steps with its bootstrap interval, 0 at 0 steps; below zero the target moved more.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ._compare_rows import ComparisonData
from ._paired import KIND_BASE

if TYPE_CHECKING:
    import pandas as pd

METRIC = "kl"
DID = "kl_did"


COLUMNS = ["series", "run", "steps", "model", "style", "culture", "role", "metric", "value", "ci_low", "ci_high"]


def dose_series(comp: ComparisonData) -> dict[str, list[tuple[int, str]]]:
    """Series name -> [(steps, run label)] in step order, for series with at least two step counts."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    variant: dict[str, str | None] = {}
    for r in comp.runs:
        if r.dose_key is not None and r.max_steps is not None:
            groups[r.dose_key].append((r.max_steps, r.label))
            variant.setdefault(r.dose_key, r.dataset_variant)
    out: dict[str, list[tuple[int, str]]] = {}
    for key, runs in groups.items():
        if len({s for s, _ in runs}) < 2:
            continue
        name = str(variant[key] or "runs")
        while name in out:
            name += "'"
        out[name] = sorted(runs)
    return out


def dose_frame(comp: ComparisonData) -> pd.DataFrame:
    """The figure's data: one row per series, step count, adapted alias, style and culture (0 = base model)."""
    import pandas as pd

    recs: list[dict[str, Any]] = []
    for name, runs in dose_series(comp).items():
        labels = [lab for _, lab in runs]
        targets = set(comp.targets.get(labels[0], []))
        adapted = [r for r in comp.rows if r.run in labels and r.role == "adapted" and METRIC in r.values]
        styles = {r.style for r in adapted}
        steps = dict((lab, s) for s, lab in runs)
        base = [r for r in comp.rows if r.run == labels[0] and r.role == "base" and r.style in styles]
        for r, n in [(b, 0) for b in base] + [(a, steps[a.run]) for a in adapted]:
            e = r.values.get(METRIC)
            if e is None:
                continue
            recs.append(
                {
                    "series": name,
                    "run": r.run,
                    "steps": n,
                    "model": r.model,
                    "style": r.style,
                    "culture": r.culture,
                    "role": "target" if r.culture in targets else "comparison",
                    "metric": METRIC,
                    "value": e.value,
                    "ci_low": e.ci_low,
                    "ci_high": e.ci_high,
                }
            )
        for sp in comp.specificity:
            run = sp.row.split(":", 1)[0]
            if sp.kind != KIND_BASE or sp.metric != METRIC or run not in steps:
                continue
            pair = f"{sp.target} - {sp.comparison}"
            _, model, style = sp.row.split(":")
            common = {"series": name, "model": model, "style": style, "culture": pair, "role": "did", "metric": DID}
            recs.append({**common, "run": labels[0], "steps": 0, "value": 0.0, "ci_low": 0.0, "ci_high": 0.0})
            recs.append({**common, "run": run, "steps": steps[run], "value": sp.did, "ci_low": sp.ci_low,
                         "ci_high": sp.ci_high})  # fmt: skip
    frame = pd.DataFrame(recs, columns=COLUMNS).drop_duplicates(["series", "run", "steps", "model", "style", "culture"])
    return frame.sort_values(["series", "culture", "style", "steps"], kind="stable")
