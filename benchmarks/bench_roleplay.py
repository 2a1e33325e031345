"""Role-play throughput: N concurrent episodes vs the same episodes one at a time (as Sotopia runs locally).

Same model instance (the embedded model unless --model), same run of this script, same scenarios
(the shipped seed scenarios, set to --culture). Generated tokens are counted at the in-process
backend (`generate_ids`), so re-asks and guided-decoding pieces count as what they cost. The response
cache is off and the engine's prompt-prefix cache is emptied before each phase, so neither phase
reuses the other's work.

    python benchmarks/bench_roleplay.py                       # 32 episodes, 4 turns each
    python benchmarks/bench_roleplay.py --seq-episodes 8      # time the sequential loop on the first 8 only
    python benchmarks/bench_roleplay.py --quick               # 8 episodes (2 sequential), 4 turns: minutes

Prints both throughputs and, per phase, where the engine's time went (`_profile.report`); then a plain
batched transformers forward of a sample of the concurrent phase's prompts (same run) and
`efficiency=<concurrent prompt tok/s / plain forward tok/s>`; the LAST line is
`ratio=<concurrent tokens/s / sequential tokens/s>`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _profile import Recorder, plain_decode_rate, plain_forward_rate, report, report_same_work

from clca.llm import GenParams, load_model
from clca.roleplay import RoleplayConfig, run_roleplay
from clca.scenarios import load_seeds
from clca.store import RunStore


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
    llm: Any, rec: Recorder, run_dir: Path, keys: list[str], cfg: RoleplayConfig, sequential: bool
) -> tuple[int, float, int, int]:
    llm.engine._prefix_cache.clear()
    with RunStore(run_dir) as store:
        t0, tok0 = time.perf_counter(), rec.generated
        if sequential:
            for key in keys:
                await run_roleplay(store, llm, cfg.model_copy(update={"concurrency": 1}), scenario_keys=[key])
        else:
            await run_roleplay(store, llm, cfg, scenario_keys=keys)
        secs = time.perf_counter() - t0
        turns = store.count("turn")
        ok = store.count("episode")
    return rec.generated - tok0, secs, turns, ok


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--episodes", type=int, default=32, help="episodes run concurrently")
    ap.add_argument("--seq-episodes", type=int, default=None, help="episodes in the sequential loop (default: all)")
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--culture", default="JPN")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-prompts", type=int, default=48, help="prompts in the plain-forward reference sample")
    ap.add_argument("--dtype", default=None, help="model dtype for both phases (default: the engine's, float32 on CPU)")
    ap.add_argument("--quick", action="store_true", help="8 episodes, 2 of them in the sequential loop")
    a = ap.parse_args()
    if a.quick:
        a.episodes, a.seq_episodes, a.ref_prompts = 8, a.seq_episodes or 2, 16

    llm = load_model(a.model, cache=False, **({"dtype": a.dtype} if a.dtype else {}))
    rec = Recorder(llm)
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
        pre0, st0, p0 = eng.prefill_tokens, eng.stats.copy(), len(rec.prompts)
        eng.prefill_log = []  # the concurrent phase's prompt work, for the same-work reference
        c_tok, c_s, c_turns, c_ok = await phase(llm, rec, conc_dir, keys, cfg, sequential=False)
        work, eng.prefill_log = eng.prefill_log, None
        pre1, st1, p1 = eng.prefill_tokens, eng.stats.copy(), len(rec.prompts)
        s_tok, s_s, s_turns, s_ok = await phase(llm, rec, seq_dir, seq_keys, cfg, sequential=True)
        pre2, st2, p2 = eng.prefill_tokens, eng.stats.copy(), len(rec.prompts)
    await llm.aclose()
    conc_prompts = rec.prompts[p0:p1]
    plain = plain_forward_rate(llm, conc_prompts, sample=a.ref_prompts)
    decode = plain_decode_rate(llm, conc_prompts, batch=a.episodes, steps=a.max_tokens)
    c_rate, s_rate = c_tok / c_s, s_tok / s_s
    print(f"model={llm.model_id} dtype={llm.engine.dtype} max_turns={a.max_turns} max_tokens={a.max_tokens}")
    for name, n, turns, ok, tok, secs, rate in (
        ("concurrent", len(keys), c_turns, c_ok, c_tok, c_s, c_rate),
        ("sequential", len(seq_keys), s_turns, s_ok, s_tok, s_s, s_rate),
    ):
        how = "at once" if name == "concurrent" else "one at a time"
        print(f"{name}: {n} episodes {how}, {turns} turns ({ok} ok episodes), ", end="")
        print(f"{tok} tokens in {secs:.1f}s = {rate:.1f} tok/s")
    asked = sum(len(p) for p in conc_prompts)
    print(f"prompt tokens computed: concurrent {pre1 - pre0} (of {asked} in the prompts asked), "
          f"sequential {pre2 - pre1}")  # fmt: skip
    rc = report("concurrent", st1.minus(st0), c_s, pre1 - pre0, p1 - p0, c_tok)
    report("sequential", st2.minus(st1), s_s, pre2 - pre1, p2 - p1, s_tok)
    print(f"plain batched forward (transformers, batch 8, right-padded) of the same prompts: {plain:.1f} prompt tok/s")
    same = report_same_work(llm, work, rc["prompt_tok_s"], sample=a.ref_prompts)
    # the best the concurrent phase could do with a plain model: its prompt work at the same-work rate, then
    # every generated token at the rate of plain decoding with all episodes in one batch throughout
    best = c_tok / ((pre1 - pre0) / same + c_tok / decode)
    print(f"plain batched decoding ({a.episodes} rows of its prompts, short to long, {a.max_tokens} steps): "
          f"{decode:.1f} tok/s; ceiling for this workload with a plain model: {best:.1f} tok/s = "
          f"{best / s_rate:.2f}x the sequential loop")  # fmt: skip
    print(f"efficiency={rc['prompt_tok_s'] / plain:.3f}")
    print(f"ratio={c_rate / s_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
