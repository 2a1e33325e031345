"""Dose-response of a comparison: KL to the target and to the comparison cultures against training steps.

Runs whose stored configs are equal except for `train.max_steps` (and names and paths; `RunInfo.dose_key`)
form a dose series when at least two of them train for different numbers of steps. Each series is drawn as
KL (mean over questions with its stored 95 % interval) against steps, one line per culture and prompt
style of the adapted student; the base model of the series' first run stands at 0 steps. Below it, the
specificity against base (`_specificity`): the difference-in-differences of KL (target minus comparison
culture) against steps with its bootstrap interval, 0 at 0 steps; below zero the target moved more.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._paired import KIND_BASE

if TYPE_CHECKING:
    import pandas as pd

    from ._compare import Comparison
    from ._figures import Figure

METRIC = "kl"
DID = "kl_did"
#: run config keys that do not change what a run's student learns (a dose series differs only in train.max_steps)
DOSE_IGNORED = ("name", "run_dir", "reuse_from", "continue_from", "cache")
COLUMNS = ["series", "run", "steps", "model", "style", "culture", "role", "metric", "value", "ci_low", "ci_high"]


def dose_config(cfg: dict[str, Any]) -> tuple[int | None, str | None]:
    """(train.max_steps when > 0, hash of the config without it and without names and paths)."""
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    steps = train.get("max_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        return None, None
    rest = {k: v for k, v in cfg.items() if k not in DOSE_IGNORED}
    rest["train"] = {k: v for k, v in train.items() if k not in ("max_steps", "progress")}
    text = json.dumps(rest, sort_keys=True, default=str)
    return steps, hashlib.sha256(text.encode()).hexdigest()[:16]


def dose_series(comp: Comparison) -> dict[str, list[tuple[int, str]]]:
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


def dose_frame(comp: Comparison) -> pd.DataFrame:
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


def dose_response(comp: Comparison, out: Path, svg: bool = False) -> Figure | None:
    """The dose-response figure (PDF + PNG + CSV, or SVG), or None without a dose series."""
    from ._figures import _pyplot, _save

    data = dose_frame(comp)
    if data.empty:
        return None
    plt = _pyplot()
    names = list(dict.fromkeys(data["series"]))
    has_did = bool((data["role"] == "did").any())
    rows = 2 if has_did else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(4.6 * len(names), 3.2 * rows), squeeze=False)
    for k, name in enumerate(names):
        sub = data[data["series"] == name]
        _lines(axes[0][k], sub[sub["role"] != "did"])
        axes[0][k].set_ylabel("KL(model || survey), nats")
        title = f"{name}: KL against training steps\n(lower is better; whiskers: 95% CI over questions)"
        axes[0][k].set_title(title, fontsize=9)
        if has_did:
            ax = axes[1][k]
            _lines(ax, sub[sub["role"] == "did"])
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.set_ylabel("KL change, target minus comparison")
            ax.set_title("specificity vs base (below 0: the target moved more)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, "dose_response", "Dose-response: KL against training steps", data, svg)


def _lines(ax: Any, data: pd.DataFrame) -> None:
    """One line per culture (or culture pair), style and role, with CI whiskers."""
    for (culture, style, role), line in data.groupby(["culture", "style", "role"], sort=True):
        lo = (line["value"] - line["ci_low"]).fillna(0.0).clip(lower=0.0)
        hi = (line["ci_high"] - line["value"]).fillna(0.0).clip(lower=0.0)
        ax.errorbar(line["steps"], line["value"], yerr=[lo, hi], marker="o", capsize=3,
                    linestyle="--" if role == "comparison" else "-", label=f"{culture} ({role}, {style})")  # fmt: skip
    ax.set_xlabel("training steps (0 = base model)")
    if len(data):
        ax.legend(fontsize=7, frameon=False)
