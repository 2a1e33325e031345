"""Memory of `clca.runner.run_items` with many queued items: 10,000 vs 100.

Each item goes through a stage-like function: a MockLLM structured call (JSON re-parse and pydantic
validation), then one artifact written to a real SQLite run store, with the runner's default
concurrency (32 workers). Each size runs in a fresh process so the peak RSS (resource.ru_maxrss) is that
size's own; tracemalloc's peak is measured from just before `run_items` (so it is the runner's and the
stage's working memory, not the item list or the imported libraries).

    python benchmarks/bench_queue_memory.py            # prints both sizes and the ratios
    python benchmarks/bench_queue_memory.py --n 5000   # one size, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from pydantic import BaseModel


class Verdict(BaseModel):
    reasoning: str
    label: str


def measure(n: int, concurrency: int = 32) -> dict[str, float]:
    from clca.llm import GenParams, MockLLM
    from clca.runner import run_items
    from clca.store import RunStore

    llm = MockLLM(['{"reasoning": "the speakers greet each other politely", "label": "good"}'])
    items = [f"EGY/seed-{i:05d}/s0" for i in range(n)]  # all queued up front
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "run")

        async def stage(key: str) -> bool:
            v = await llm.structured([{"role": "user", "content": f"judge {key}"}], Verdict, GenParams(max_tokens=32))
            store.put("judgement", key, v.model_dump())
            llm.calls.clear()  # the mock keeps every prompt; a real backend keeps none
            return True

        tracemalloc.start()
        t0 = time.perf_counter()
        summary = asyncio.run(
            run_items(items, stage, is_done=lambda k: store.done("judgement", k), concurrency=concurrency,
                      progress=False)
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert summary.ok == n and store.count("judgement") == n
        store.close()
    return {
        "items": n,
        "seconds": round(seconds, 2),
        "tracemalloc_peak_mb": round(peak / 2**20, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, help="measure one size in this process and print JSON")
    ap.add_argument("--sizes", type=int, nargs=2, default=[100, 10_000], metavar=("SMALL", "LARGE"))
    args = ap.parse_args()
    if args.n is not None:
        print(json.dumps(measure(args.n)))
        return
    res = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--n", str(n)], capture_output=True, text=True, check=True)
        res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = res
    for r in res:
        print(
            f"{r['items']:>6} items: {r['seconds']:6.2f}s, tracemalloc peak {r['tracemalloc_peak_mb']:6.2f} MB, "
            f"peak RSS {r['peak_rss_mb']:6.1f} MB"
        )
    print(
        f"ratio {large['items'] // small['items']}x items: tracemalloc peak x"
        f"{large['tracemalloc_peak_mb'] / max(small['tracemalloc_peak_mb'], 1e-3):.2f}, "
        f"peak RSS x{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
