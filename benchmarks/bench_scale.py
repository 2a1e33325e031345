"""Cost that grows with the work and no faster: one pipeline config run at three sizes, per stage.

Each size runs the whole pipeline (every stage, response cache off, so every model call is made) in its
own fresh process on the embedded model, with `scenarios.n` set to the size and the evaluation's personas
scaled alongside (`eval.personas` = size / 2; the items stay those of the config), so every stage's work is
proportional to the size: scenarios, dialogues, judgements, intentions, training rows (and steps, at fixed
epochs) and evaluation prompts all double when the size doubles. Printed per stage and size: wall time,
model calls, tokens (prompt + generated, counted by the in-process engine) and peak resident memory, each
per unit of work (per scenario), then the growth exponent of each stage's time, calls and tokens (the
least-squares slope of log cost against log size over the sizes; 1.0 = linear). The last lines are
`slope_STAGE=` for the wall time of each stage and `max_slope=` (target: <= 1.1 for every stage).

    python benchmarks/bench_scale.py                          # configs/demo.yaml at 8 / 16 / 32 scenarios
    python benchmarks/bench_scale.py --sizes 2 4 8            # a quicker look (even sizes: personas = size / 2)
    python benchmarks/bench_scale.py --config my.yaml --keep out/   # keep each size's run directory

A stage's memory is its own peak inside the process (`clca.memory.StagePeak`); the model's weights and the
engine's bounded KV budget are the same at every size, so memory per unit falls as the size grows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _worker(config: str, size: int, run_dir: str) -> dict[str, Any]:
    """Run the pipeline at one size in this process; per stage: seconds, calls, tokens, peak MB."""
    from clca import pipeline
    from clca.run_config import load_run_config

    counted_tokens = [0]  # prompt + generated tokens of every in-process model (no reference to the models:
    load = pipeline.load_model  # the pipeline releases them before training)

    def counted(spec: str, **kw: Any) -> Any:
        llm = load(spec, **kw)
        if not hasattr(llm, "generate_ids"):
            raise SystemExit("bench_scale needs in-process models (embedded or hf:PATH)")
        gen, score = llm.generate_ids, llm.score_ids

        async def generate_ids(prompt_ids: list[int], rows: list[dict[str, Any]]) -> Any:
            outs = await gen(prompt_ids, rows)
            counted_tokens[0] += len(prompt_ids) + sum(len(o.token_ids) for o in outs)
            return outs

        async def score_ids(prompt_ids: list[int], continuations: list[list[int]], top_logprobs: int = 0) -> Any:
            counted_tokens[0] += len(prompt_ids) + sum(len(c) for c in continuations)
            return await score(prompt_ids, continuations, top_logprobs)

        llm.generate_ids, llm.score_ids = generate_ids, score_ids
        return llm

    pipeline.load_model = counted  # type: ignore[assignment]
    overrides = {
        "run_dir": run_dir,
        "cache": False,
        "scenarios.n": size,
        "eval.personas": size // 2,
    }
    cfg = load_run_config(config, overrides)
    stages: dict[str, dict[str, Any]] = {}
    seen = [0]

    def on_stage(res: Any) -> None:
        now = counted_tokens[0]
        stages[res.stage] = {
            "seconds": res.seconds,
            "calls": res.model_calls,
            "tokens": now - seen[0],
            "peak_mb": res.stage_peak_mb,
        }
        seen[0] = now

    asyncio.run(pipeline.run_pipeline(cfg, on_stage=on_stage))
    return stages


def slope(sizes: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(size); None when a value is not positive."""
    if len(sizes) < 2 or any(v <= 0 for v in values):
        return None
    xs = [math.log(s) for s in sizes]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--keep", help="keep each size's run directory under this folder (default: a temporary one)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        print(json.dumps(_worker(a.config, a.worker, a.run_dir)))
        return
    if len(a.sizes) < 2 or sorted(set(a.sizes)) != a.sizes:
        raise SystemExit("--sizes: at least two sizes, increasing")
    if any(s % 2 for s in a.sizes):  # sizes 1 and 2 would both evaluate one persona
        raise SystemExit("--sizes: even sizes only (the evaluation's personas are half the size)")
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="clca-bench-scale-"))
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for size in a.sizes:
        run_dir = root / f"size-{size}"
        if run_dir.exists():
            raise SystemExit(f"{run_dir} exists; choose another --keep folder")
        cmd = [sys.executable, __file__, "--config", a.config, "--worker", str(size), "--run-dir", str(run_dir)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path.cwd())
        results[size] = json.loads(out.stdout.strip().splitlines()[-1])
        total = sum(s["seconds"] for s in results[size].values())
        print(f"size {size}: {total:.0f} s in all", flush=True)
    stages = list(results[a.sizes[0]])
    print(f"\n{'stage':<10} {'size':>5} {'s/unit':>8} {'calls/unit':>10} {'tok/unit':>9} {'peak MB':>8}")
    slopes: dict[str, tuple[float | None, ...]] = {}
    for st in stages:
        rows = [results[s][st] for s in a.sizes]
        for size, r in zip(a.sizes, rows, strict=True):
            print(
                f"{st:<10} {size:>5} {r['seconds'] / size:>8.2f} {r['calls'] / size:>10.2f} "
                f"{r['tokens'] / size:>9.0f} {r['peak_mb']:>8.0f}"
            )
        slopes[st] = tuple(slope(a.sizes, [r[k] for r in rows]) for k in ("seconds", "calls", "tokens"))
    print(f"\n{'stage':<10} {'time':>6} {'calls':>6} {'tokens':>6}   (growth exponents; 1.0 = linear)")
    for st, (t, c, k) in slopes.items():
        print(f"{st:<10} {_fmt(t)} {_fmt(c)} {_fmt(k)}")
    for st, (t, _, _) in slopes.items():
        print(f"slope_{st}={_fmt(t).strip()}")
    worst = max((t for t, _, _ in slopes.values() if t is not None), default=float("nan"))
    print(f"max_slope={worst:.2f}")


if __name__ == "__main__":
    main()
