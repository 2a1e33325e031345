"""Peak resident memory of the in-process engine's workloads against the model's own size and against a plain
transformers run of the same work.

Workloads (the embedded model, greedy, float32 on the CPU):
  long_prompts  N annotation-like prompts of about L tokens sharing a long system part (as the intentions
                stage sends: every turn of a dialogue), each generating T tokens: clca through `HFModel`
                (all rows submitted at once, as the stage's concurrent annotators do) under its memory
                budget; plain: `model.generate` on all N prompts as one left-padded batch.
  scoring       M prompts of about 300 tokens, each with 4 two-token options (as the evaluation scores
                survey answers): clca through `score_ids`; plain: one forward per prompt and option
                (prompt + option), batched by prompt.

Each side of each workload runs in its own fresh process, so each peak (getrusage's ru_maxrss) is that
run's own. Printed per workload: clca's peak, plain's peak, the model's weights, clca's peak over the
weights, and peak_ratio = clca / plain. The last line is `peak_ratio=` with the largest workload ratio
(target: <= 1.2).

    python benchmarks/bench_memory.py                 # both workloads, both sides
    python benchmarks/bench_memory.py --rows 12       # fewer long prompts
    python benchmarks/bench_memory.py --model "embedded?max_kv_mb=8192&prefix_cache_mb=1024"   # ~ the old bounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

SYSTEM = (
    "You are an expert in the culture of Egypt. You annotate the intention of one turn of a dialogue between two "
    "people: what the speaker wants to achieve with it, and whether that is shaped by the culture. "
)
SCENE = (
    "Two colleagues, Amira and Karim, meet in the office kitchen in Cairo. Both want the last seat on the bus to "
    "the company retreat. Amira's goal: get the seat without hurting the relationship. Karim's goal: be seen as "
    "generous by the manager. "
)


def _turn(i: int) -> str:
    who = "Amira" if i % 2 == 0 else "Karim"
    return f'{who}: "I think we should talk about the seat, my friend, before the manager decides for us ({i})." '


def long_prompts(tok: Any, rows: int, length: int) -> list[list[int]]:
    """rows prompts of about `length` tokens: a shared system part, then a growing transcript (one per turn)."""
    out = []
    for r in range(rows):
        text = SYSTEM + SCENE * 4
        i = 0
        while len(tok(text, add_special_tokens=False)["input_ids"]) < length + r:
            text += _turn(i)
            i += 1
        chat = tok.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text + f"\nTurn {r}: intention?"}],
            add_generation_prompt=True,
            tokenize=False,
        )
        out.append(list(tok(chat, add_special_tokens=False)["input_ids"]))
    return out


def score_prompts(tok: Any, n: int) -> tuple[list[list[int]], list[list[int]]]:
    prompts = []
    for i in range(n):
        q = f"Persona {i}: a {20 + i % 50}-year-old from Cairo. " + SCENE + f" How important is item {i} to you?"
        prompts.append(list(tok(q * 2, add_special_tokens=False)["input_ids"]))
    words = (" Very", " Rather", " Not very", " No")
    options = [list(tok(o, add_special_tokens=False)["input_ids"])[:2] for o in words]
    return prompts, options


# ------------------------------------------------------------------------------------------------ one side


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_side(workload: str, side: str, rows: int, length: int, tokens: int, items: int, spec: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    if side == "clca":
        from clca.llm import load_model

        llm: Any = load_model(spec, cache=False)
        tok = llm.tokenizer
        engine = llm.engine
        weights = sum(p.numel() * p.element_size() for p in engine.model.parameters())
        budget = engine.budget.line()

        async def go() -> None:
            if workload == "long_prompts":
                ps = long_prompts(tok, rows, length)
                row = {"max_tokens": tokens, "ignore_eos": True}
                await asyncio.gather(*(llm.generate_ids(p, [row]) for p in ps))
            else:
                ps, opts = score_prompts(tok, items)
                await asyncio.gather(*(llm.score_ids(p, opts) for p in ps))

        asyncio.run(go())
        asyncio.run(llm.aclose())
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from clca.llm._embedded import embedded_model_dir

        d = embedded_model_dir()
        tok = AutoTokenizer.from_pretrained(str(d))
        model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32).eval()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        budget = ""
        with torch.inference_mode():
            if workload == "long_prompts":
                ps = long_prompts(tok, rows, length)
                width = max(map(len, ps))
                pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in ps])
                attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ps])
                model.generate(
                    input_ids=ids, attention_mask=attn, max_new_tokens=tokens, min_new_tokens=tokens,
                    do_sample=False, pad_token_id=pad,
                )  # fmt: skip
            else:
                ps, opts = score_prompts(tok, items)
                pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
                width = max(map(len, opts))
                for p in ps:
                    batch = torch.tensor([p + o + [pad] * (width - len(o)) for o in opts])
                    attn = torch.tensor([[1] * (len(p) + len(o)) + [0] * (width - len(o)) for o in opts])
                    model(input_ids=batch, attention_mask=attn).logits.float().log_softmax(-1)
    return {"peak_mb": _peak_mb(), "weights_mb": weights / 2**20, "s": time.perf_counter() - t0, "budget": budget}


# ------------------------------------------------------------------------------------------------ driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=24, help="long prompts (the demo's intentions stage: 24 turns)")
    ap.add_argument("--length", type=int, default=1000, help="tokens of each long prompt, about")
    ap.add_argument("--tokens", type=int, default=32, help="tokens generated per long prompt")
    ap.add_argument("--items", type=int, default=64, help="scored prompts")
    ap.add_argument("--workloads", default="long_prompts,scoring")
    ap.add_argument("--model", default="embedded", help="clca's model string (e.g. embedded?max_kv_mb=2048)")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(run_side(a.workload, a.side, a.rows, a.length, a.tokens, a.items, a.model)))
        return
    worst = 0.0
    for w in a.workloads.split(","):
        res = {}
        for side in ("clca", "plain"):
            cmd = [sys.executable, __file__, "--side", side, "--workload", w, "--rows", str(a.rows),
                   "--length", str(a.length), "--tokens", str(a.tokens), "--items", str(a.items),
                   "--model", a.model]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[side] = json.loads(out.stdout.strip().splitlines()[-1])
            if res[side]["budget"]:
                print(f"  {res[side]['budget']}")
        c, p = res["clca"], res["plain"]
        ratio = c["peak_mb"] / p["peak_mb"]
        worst = max(worst, ratio)
        print(
            f"{w}: clca peak {c['peak_mb']:.0f} MB ({c['s']:.1f}s), plain transformers {p['peak_mb']:.0f} MB "
            f"({p['s']:.1f}s), weights {c['weights_mb']:.0f} MB, clca/weights {c['peak_mb'] / c['weights_mb']:.2f}, "
            f"peak_ratio {ratio:.3f}",
            flush=True,
        )
    print(f"peak_ratio={worst:.3f}")


if __name__ == "__main__":
    main()
