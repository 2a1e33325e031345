"""Measure how often a model's scenario adaptations pass the checks (first try and within the bound).

    python benchmarks/bench_scenarios.py --model embedded --n 10 --cultures Japan,Mexico --run-dir /tmp/scn-bench

Prints one JSON object: per culture ok / failed / first-try validity / failure reasons, and wall time.
Re-running with the same --run-dir resumes (finished keys are skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from clca.llm import load_model
from clca.scenarios import AdaptConfig, adapt_scenarios, scenario_stats
from clca.store import RunStore


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--n", type=int, default=10, help="seeds per culture")
    ap.add_argument("--cultures", default="Japan,Mexico")
    ap.add_argument("--max-attempts", type=int, default=2)
    ap.add_argument("--schema-attempts", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args()
    llm = load_model(args.model)
    store = RunStore(args.run_dir)
    cfg = AdaptConfig(
        n=args.n,
        max_attempts=args.max_attempts,
        schema_attempts=args.schema_attempts,
        temperature=args.temperature,
        concurrency=args.concurrency,
        progress=False,
    )
    t0 = time.time()
    cultures = [c.strip() for c in args.cultures.split(",") if c.strip()]
    await asyncio.gather(*(adapt_scenarios(store, llm, c, cfg) for c in cultures))
    wall = time.time() - t0
    rows = [
        {
            "culture": s.culture,
            "ok": s.ok,
            "failed": s.failed,
            "first_try_valid": s.first_try,
            "first_try_rate": round(s.first_try_rate, 3),
            "name_change_rate": s.name_change_rate,
            "near_duplicate_rate": round(s.near_duplicate_rate, 3),
            "failure_reasons": s.reasons,
        }
        for s in scenario_stats(store)
    ]
    print(
        json.dumps(
            {"model": llm.model_id, "config": cfg.model_dump(mode="json"), "wall_s": round(wall, 1), "cultures": rows},
            indent=2,
        )
    )
    await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
