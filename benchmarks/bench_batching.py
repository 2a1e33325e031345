"""Throughput of the in-process backend: N concurrent chat requests vs the same requests one at a time.

    python benchmarks/bench_batching.py [--n 32] [--max-tokens 64] [--model embedded] [--threads T]

Both runs use the same loaded model, greedy decoding (temperature 0) and `ignore_eos`, so every
request generates exactly --max-tokens tokens and both sides do the same work. Prompts differ per
request; the prefix cache is cleared before each phase so neither phase reuses the other's prefill.
Prints both rates; the last line is `ratio=<concurrent rate / sequential rate>`.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from clca.llm import GenParams
from clca.llm._hf import HFModel

TOPICS = ["rivers", "tea", "trains", "winter", "markets", "music", "festivals", "gardens"]


def _requests(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Write a few sentences about {TOPICS[i % len(TOPICS)]} (note {i})."}]
        for i in range(n)
    ]


async def _run(model: HFModel, n: int, max_tokens: int) -> tuple[float, float]:
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    reqs = _requests(n)
    await model.chat(reqs[0], GenParams(max_tokens=2))  # load the model outside the timings
    model.engine._prefix_cache.clear()
    t0 = time.perf_counter()
    seq_tokens = 0
    for r in reqs:
        seq_tokens += (await model.chat(r, params)).completion_tokens
    seq = seq_tokens / (time.perf_counter() - t0)
    model.engine._prefix_cache.clear()
    t0 = time.perf_counter()
    results = await asyncio.gather(*[model.chat(r, params) for r in reqs])
    conc = sum(r.completion_tokens for r in results) / (time.perf_counter() - t0)
    if seq_tokens != n * max_tokens or sum(r.completion_tokens for r in results) != n * max_tokens:
        raise SystemExit("token counts differ from n * max_tokens; the comparison would be unfair")
    return seq, conc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="number of concurrent requests (default 32)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request (default 64)")
    ap.add_argument("--model", default="embedded", help="model string: embedded or hf:PATH[+lora:DIR]")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    model = HFModel.from_spec(args.model, ignore_eos=True, max_batch=max(args.n, 1), torch_threads=args.threads)
    try:
        seq, conc = asyncio.run(_run(model, args.n, args.max_tokens))
    finally:
        asyncio.run(model.aclose())
    print(f"model={model.model_id} n={args.n} max_tokens={args.max_tokens} largest_batch={model.batcher.stats.largest}")
    print(f"sequential: {seq:.1f} generated tokens/s")
    print(f"concurrent: {conc:.1f} generated tokens/s")
    print(f"ratio={conc / seq:.2f}")


if __name__ == "__main__":
    main()
