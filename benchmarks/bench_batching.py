"""Throughput of the in-process backend: N concurrent chat requests vs the same requests one at a time.

    python benchmarks/bench_batching.py [--n 32] [--max-tokens 64] [--model embedded] [--threads T]

Both sides use the same loaded model, greedy decoding (temperature 0) and `ignore_eos`, so every
request generates exactly --max-tokens tokens and both sides do the same work. Prompts differ per
request; the prefix cache is cleared before each phase so neither phase reuses the other's prefill.
The two sides are measured in interleaved rounds (see `_run`) so that machine drift hits both alike.
    python benchmarks/bench_batching.py --quick        # 16 requests x 32 tokens, 2 rounds: minutes

Prints both rates, where the engine's time went in the concurrent rounds (`_profile.report`), a plain
batched transformers forward of the same prompts (same run) and
`efficiency=<concurrent prompt tok/s / plain forward tok/s>`; the last line is
`ratio=<concurrent rate / sequential rate>`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _profile import plain_forward_rate, report

from clca.llm import GenParams
from clca.llm.backends import HFModel
from clca.llm.engine import EngineStats

TOPICS = ["rivers", "tea", "trains", "winter", "markets", "music", "festivals", "gardens"]


def _requests(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Write a few sentences about {TOPICS[i % len(TOPICS)]} (note {i})."}]
        for i in range(n)
    ]


async def _run(model: HFModel, n: int, max_tokens: int, rounds: int, prof: dict[str, Any]) -> tuple[float, float]:
    """(sequential rate, concurrent rate) in generated tokens/s, measured in interleaved rounds.

    Each round runs all n requests concurrently, then a 1/rounds share of them one at a time; over all
    rounds every request runs one at a time exactly once. Interleaving puts both sides under the same
    machine conditions (on a shared VM throughput drifts by +-15% within minutes, measured).
    """
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    reqs = _requests(n)
    await model.chat(reqs[0], GenParams(max_tokens=2))  # load the model outside the timings
    seq_tokens = conc_tokens = 0
    seq_time = conc_time = 0.0
    for k in range(rounds):
        model.engine._prefix_cache.clear()
        st0, pre0 = model.engine.stats.copy(), model.engine.prefill_tokens
        t0 = time.perf_counter()
        results = await asyncio.gather(*[model.chat(r, params) for r in reqs])
        conc_time += time.perf_counter() - t0
        prof["wall"] += time.perf_counter() - t0
        diff = model.engine.stats.minus(st0).__dict__
        prof["stats"] = {k: prof["stats"].get(k, 0) + v for k, v in diff.items()}
        prof["computed"] += model.engine.prefill_tokens - pre0
        conc_tokens += sum(r.completion_tokens for r in results)
        model.engine._prefix_cache.clear()
        t0 = time.perf_counter()
        for r in reqs[k::rounds]:
            seq_tokens += (await model.chat(r, params)).completion_tokens
        seq_time += time.perf_counter() - t0
        so_far = f"sequential {seq_tokens / seq_time:.1f}, concurrent {conc_tokens / conc_time:.1f} tokens/s"
        print(f"round {k + 1}/{rounds}: {so_far} so far", flush=True)
    if seq_tokens != n * max_tokens or conc_tokens != rounds * n * max_tokens:
        raise SystemExit("token counts differ from n * max_tokens; the comparison would be unfair")
    return seq_tokens / seq_time, conc_tokens / conc_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="number of concurrent requests (default 32)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request (default 64)")
    ap.add_argument("--model", default="embedded", help="model string: embedded or hf:PATH[+lora:DIR]")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4), see _run")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="16 requests x 32 tokens, 2 rounds")
    args = ap.parse_args()
    if args.quick:
        args.n, args.max_tokens, args.rounds = 16, 32, 2
    model = HFModel.from_spec(args.model, ignore_eos=True, max_batch=max(args.n, 1), torch_threads=args.threads)
    prof: dict[str, Any] = {"stats": {}, "computed": 0, "wall": 0.0}
    try:
        seq, conc = asyncio.run(_run(model, args.n, args.max_tokens, args.rounds, prof))
    finally:
        asyncio.run(model.aclose())
    stats = EngineStats(**prof["stats"])
    prompts = [model.encode(model.prompt_text(r)) for r in _requests(args.n)]
    wall = prof["wall"]
    rates = report(
        "concurrent", stats, wall, prof["computed"], args.n * args.rounds, args.n * args.rounds * args.max_tokens
    )
    plain = plain_forward_rate(model, prompts)
    print(f"plain batched forward (transformers, batch 8, right-padded), same prompts: {plain:.1f} prompt tok/s")
    print(f"model={model.model_id} n={args.n} max_tokens={args.max_tokens} largest_batch={model.batcher.stats.largest}")
    print(f"sequential: {seq:.1f} generated tokens/s")
    print(f"concurrent: {conc:.1f} generated tokens/s")
    print(f"efficiency={rates['prompt_tok_s'] / plain:.3f}")
    print(f"ratio={conc / seq:.2f}")


if __name__ == "__main__":
    main()
