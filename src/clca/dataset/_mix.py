"""Split by scenario, deduplication, task weights and row order (all seeded)."""

from __future__ import annotations

import hashlib
import json
import math
import random

from ._config import DatasetConfig
from ._rows import Row
from ._survey_rows import SURVEY_TASK


def split_by_scenario(
    rows: list[Row], val_fraction: float, seed: int
) -> tuple[list[Row], list[Row], list[str], list[str]]:
    """Hold out a seeded share of scenarios (never rows): no scenario ends up on both sides."""
    scenarios = sorted({r["scenario"] for r in rows})
    rng = random.Random(f"split|{seed}")
    shuffled = scenarios[:]
    rng.shuffle(shuffled)
    n_val = math.ceil(val_fraction * len(shuffled)) if val_fraction > 0 and len(shuffled) > 1 else 0
    n_val = min(n_val, len(shuffled) - 1) if shuffled else 0
    val = set(shuffled[:n_val])
    train_rows = [r for r in rows if r["scenario"] not in val]
    val_rows = [r for r in rows if r["scenario"] in val]
    return train_rows, val_rows, sorted(set(scenarios) - val), sorted(val)


def row_fingerprint(row: Row) -> str:
    norm = [(m["role"], " ".join(m["content"].split())) for m in row["messages"]]
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode()).hexdigest()


def dedup(rows: list[Row]) -> tuple[list[Row], int]:
    """Keep the first of rows whose messages are identical up to whitespace. Survey control rows are all
    kept: each is a draw of an answer, and two personas with the same prompt giving the same answer are two
    draws (dropping them would flatten the culture's answer shares toward uniform)."""
    seen: set[str] = set()
    out: list[Row] = []
    for r in rows:
        if r.get("task") == SURVEY_TASK:
            out.append(r)
            continue
        fp = row_fingerprint(r)
        if fp not in seen:
            seen.add(fp)
            out.append(r)
    return out, len(rows) - len(out)


def apply_weight(rows: list[Row], weight: float, rng: random.Random) -> list[Row]:
    """weight 1 -> every row once; 2.5 -> every row twice plus a seeded half; 0.3 -> a seeded 30%."""
    whole, frac = int(weight), weight - int(weight)
    out = rows * whole
    extra = round(frac * len(rows))
    if extra:
        out += rng.sample(rows, extra)
    return out


def mix(by_task: dict[str, list[Row]], cfg: DatasetConfig, split: str) -> list[Row]:
    """Apply task weights and the configured order to one split's rows."""
    rng = random.Random(f"mix|{cfg.seed}|{split}")
    weighted = {t: apply_weight(rows, cfg.weights.get(t, 1.0), rng) for t, rows in by_task.items()}
    if cfg.order == "concat":
        return [r for t in sorted(weighted) for r in weighted[t]]
    if cfg.order == "shuffle":
        out = [r for t in sorted(weighted) for r in weighted[t]]
        rng.shuffle(out)
        return out
    # interleave: draw the next row's task with probability proportional to its weight
    queues = {t: list(rows) for t, rows in weighted.items() if rows}
    for q in queues.values():
        rng.shuffle(q)
    out = []
    while queues:
        tasks = sorted(queues)
        probs = [max(cfg.weights.get(t, 1.0), 1e-9) for t in tasks]
        t = rng.choices(tasks, weights=probs)[0]
        out.append(queues[t].pop())
        if not queues[t]:
            del queues[t]
    return out
