"""Role-play throughput: N concurrent episodes vs the same episodes one at a time (as Sotopia runs locally).

Same model instance (the embedded model unless --model), same run of this script, same scenarios
(the shipped seed scenarios, set to --culture). Generated tokens are counted at the in-process
backend (`generate_ids`), so re-asks and guided-decoding pieces count as what they cost. The response
cache is off and the engine's prompt-prefix cache is emptied before each phase, so neither phase
reuses the other's work.

    python benchmarks/bench_roleplay.py                       # 32 episodes, 2 turns each
    python benchmarks/bench_roleplay.py --seq-episodes 8      # time the sequential loop on the first 8 only

Prints both throughputs; the LAST line is `ratio=<concurrent tokens/s / sequential tokens/s>`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from clca.llm import GenParams, load_model
from clca.roleplay import RoleplayConfig, simulate
from clca.scenarios import load_seeds
from clca.store import RunStore


def count_generated_tokens(llm: Any) -> dict[str, int]:
    """Wrap the backend's generate_ids to count generated tokens (in-process backends only)."""
    if not hasattr(llm, "generate_ids"):
        raise SystemExit("this benchmark needs an in-process model (embedded or hf:PATH)")
    counter = {"tokens": 0}
    original = llm.generate_ids

    async def wrapped(prompt_ids: list[int], rows: list[dict[str, Any]]) -> Any:
        outs = await original(prompt_ids, rows)
        counter["tokens"] += sum(len(o.token_ids) for o in outs)
        return outs

    llm.generate_ids = wrapped
    return counter


def seed_run(run_dir: Path, n: int, culture: str) -> list[str]:
    seeds = load_seeds()
    keys = []
    with RunStore(run_dir) as store:
        for i in range(n):
            sc = seeds[i % len(seeds)].model_copy(update={"culture": culture})
            key = f"{culture}/{sc.provenance.id}-{i:02d}"
            store.put("scenario", key, sc.model_dump(mode="json"))
            keys.append(key)
    return keys


async def phase(
    llm: Any, counter: dict[str, int], run_dir: Path, keys: list[str], cfg: RoleplayConfig, sequential: bool
) -> tuple[int, float, int, int]:
    llm.engine._prefix_cache.clear()
    with RunStore(run_dir) as store:
        t0, tok0 = time.perf_counter(), counter["tokens"]
        if sequential:
            for key in keys:
                await simulate(store, llm, cfg.model_copy(update={"concurrency": 1}), scenario_keys=[key])
        else:
            await simulate(store, llm, cfg, scenario_keys=keys)
        secs = time.perf_counter() - t0
        turns = store.count("turn")
        ok = store.count("episode")
    return counter["tokens"] - tok0, secs, turns, ok


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--episodes", type=int, default=32, help="episodes run concurrently")
    ap.add_argument("--seq-episodes", type=int, default=None, help="episodes in the sequential loop (default: all)")
    ap.add_argument("--max-turns", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--culture", default="JPN")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    llm = load_model(a.model, cache=False)
    counter = count_generated_tokens(llm)
    await llm.chat([{"role": "user", "content": "Hello"}], GenParams(max_tokens=4))  # load weights, warm up
    cfg = RoleplayConfig(
        samples=1, max_turns=a.max_turns, max_tokens=a.max_tokens, seed=a.seed, concurrency=a.episodes, progress=False
    )
    with tempfile.TemporaryDirectory(prefix="bench-roleplay-") as tmp:
        conc_dir, seq_dir = Path(tmp) / "concurrent", Path(tmp) / "sequential"
        keys = seed_run(conc_dir, a.episodes, a.culture)
        seed_run(seq_dir, a.episodes, a.culture)
        seq_keys = keys[: a.seq_episodes] if a.seq_episodes else keys
        eng = llm.engine
        pre0 = eng.prefill_tokens
        c_tok, c_s, c_turns, c_ok = await phase(llm, counter, conc_dir, keys, cfg, sequential=False)
        pre1 = eng.prefill_tokens
        s_tok, s_s, s_turns, s_ok = await phase(llm, counter, seq_dir, seq_keys, cfg, sequential=True)
        pre2 = eng.prefill_tokens
    await llm.aclose()
    c_rate, s_rate = c_tok / c_s, s_tok / s_s
    print(f"model={llm.model_id} max_turns={a.max_turns} max_tokens={a.max_tokens}")
    for name, n, turns, ok, tok, secs, rate in (
        ("concurrent", len(keys), c_turns, c_ok, c_tok, c_s, c_rate),
        ("sequential", len(seq_keys), s_turns, s_ok, s_tok, s_s, s_rate),
    ):
        how = "at once" if name == "concurrent" else "one at a time"
        print(f"{name}: {n} episodes {how}, {turns} turns ({ok} ok episodes), ", end="")
        print(f"{tok} tokens in {secs:.1f}s = {rate:.1f} tok/s")
    print(f"prompt tokens computed: concurrent {pre1 - pre0}, sequential {pre2 - pre1}")
    print(f"ratio={c_rate / s_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
