"""Measure the valid-scenario rate of norm-based generation on real norms (e.g. Sotopia-pi's
inspirational prompts from NormBank, Social IQa and Social Chemistry).

    python benchmarks/bench_norms.py ../shared/data/sotopia/sotopia-pi/used_prompt.csv \
        --model embedded --limit 24 --cultures Japan,Mexico --run-dir /tmp/norm-bench

Draws `--limit` norms (seeded) from the file, assigns the cultures in turn, asks for one scenario per
norm and prints one JSON object: valid at the first ask, valid within `--max-attempts` asks, the
failure reasons, per source, and wall time; the last line is `valid_rate=<number>`.
Re-running with the same --run-dir resumes (finished keys are skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter, defaultdict

from clca.llm import load_model
from clca.scenarios import AdaptConfig, generate_from_norms, load_norms, source_counts
from clca.store import RunStore


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("norms_file")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--limit", type=int, default=24, help="norms drawn from the file (seeded)")
    ap.add_argument("--source", action="append", default=None, help="keep only this source (repeatable)")
    ap.add_argument("--cultures", default="Japan,Mexico", help="assigned to the drawn norms in turn")
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--schema-attempts", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=160, help="per guided field (in-process backends)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args()
    cultures = [c.strip() for c in args.cultures.split(",") if c.strip()]
    drawn = load_norms(args.norms_file, sources=args.source, limit=args.limit, seed=args.seed, allow_no_culture=True)
    norms = [nm.model_copy(update={"culture": nm.culture or cultures[i % len(cultures)]}) for i, nm in enumerate(drawn)]
    llm = load_model(args.model)
    store = RunStore(args.run_dir)
    cfg = AdaptConfig(
        max_attempts=args.max_attempts,
        schema_attempts=args.schema_attempts,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        concurrency=args.concurrency,
        seed=args.seed,
        progress=False,
    )
    t0 = time.time()
    summary = await generate_from_norms(store, llm, norms, cfg)
    wall = time.time() - t0
    by_id = {nm.id: nm for nm in norms}
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    first = ok = failed = 0
    for rec in store.iter("scenario", status=None):
        nm = by_id.get(rec.key.split("/norm-", 1)[-1])
        if nm is None:
            continue
        src = per_source[nm.source]
        if rec.status == "ok":
            ok += 1
            src["ok"] += 1
            if (rec.data or {}).get("provenance", {}).get("attempts") == 1:
                first += 1
                src["first_try"] += 1
        else:
            failed += 1
            src["failed"] += 1
            reasons[(rec.error or "").split(":")[0]] += 1
    total = ok + failed
    print(
        json.dumps(
            {
                "model": llm.model_id,
                "norms": len(norms),
                "sources": source_counts(norms),
                "cultures": cultures,
                "config": cfg.model_dump(mode="json"),
                "wall_s": round(wall, 1),
                "summary": summary.line("from norms"),
                "valid_first_ask": first,
                "valid_within_bound": ok,
                "failed": failed,
                "failure_reasons": dict(reasons),
                "per_source": {k: dict(v) for k, v in sorted(per_source.items())},
            },
            indent=2,
        )
    )
    print(f"first_ask_rate={first / total:.3f}" if total else "first_ask_rate=nan")
    print(f"valid_rate={ok / total:.3f}" if total else "valid_rate=nan")
    await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
