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
  training      LoRA training steps on chat rows of about L tokens (as the train stage: a persona system
                prompt, a long user turn, an assistant answer), batch B: clca through `train_lora` (TRL's
                SFTTrainer, loss on the assistant tokens) with the demo's settings (LoRA r 4 on q/v,
                gradient checkpointing); plain: the same rows, the same LoRA (PEFT) and checkpointing, a
                hand-written AdamW loop over `model(input_ids, labels=...)` (the loss of transformers'
                own forward, full logits).

Each side of each workload runs in its own fresh process, so each peak (getrusage's ru_maxrss) is that
run's own. Printed per workload: clca's peak, plain's peak, the model's weights, clca's peak over the
weights, and peak_ratio = clca / plain. The last line is `peak_ratio=` with the largest workload ratio
(target: <= 1.2).

    python benchmarks/bench_memory.py                 # both workloads, both sides
    python benchmarks/bench_memory.py --rows 12       # fewer long prompts
    python benchmarks/bench_memory.py --model "embedded?max_kv_mb=8192&prefix_cache_mb=1024"   # ~ the old bounds
    python benchmarks/bench_memory.py --workloads training --train-rows 16 --train-batch 2   # training only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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


def train_rows(n: int, length: int) -> list[dict[str, Any]]:
    """n chat rows longer than `length` tokens (truncated to it): a persona, a long user turn, an answer."""
    rows = []
    for i in range(n):
        user = SCENE * max(1, length // 80) + f"What would you say next? ({i})"
        rows.append({"messages": [
            {"role": "system", "content": f"You are a {20 + i % 50}-year-old from Cairo."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": _turn(i) * 2},
        ]})  # fmt: skip
    return rows


TRAIN = {"lora_r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "learning_rate": 2e-4}


def _train_clca(rows: list[dict[str, Any]], batch: int, steps: int, length: int) -> float:
    import tempfile
    from pathlib import Path

    from clca.train import TrainConfig, train_lora

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = TrainConfig(
            **TRAIN, max_steps=steps, per_device_train_batch_size=batch, max_length=length, eval=False,
            progress=False, gradient_checkpointing=True, lr_scheduler_type="constant", save_steps=10**6,
        )  # fmt: skip
        res = train_lora(data, cfg, Path(tmp) / "adapter")
    return float(res.train_loss or 0.0)


def _train_plain(model: Any, tok: Any, rows: list[dict[str, Any]], batch: int, steps: int, length: int) -> float:
    import torch
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=TRAIN["lora_r"], lora_alpha=TRAIN["lora_alpha"], target_modules=TRAIN["target_modules"],
                      lora_dropout=0.0, task_type="CAUSAL_LM")  # fmt: skip
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, lora).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=TRAIN["learning_rate"])
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    losses = []
    for step in range(steps):
        chunk = [rows[(step * batch + j) % len(rows)] for j in range(batch)]
        seqs, labels = [], []
        for r in chunk:
            prompt = tok.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, tokenize=False)
            full = tok.apply_chat_template(r["messages"], tokenize=False)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            ids = tok(full, add_special_tokens=False)["input_ids"][:length]
            seqs.append(ids)
            labels.append([-100] * min(len(p_ids), len(ids)) + ids[len(p_ids) :])
        width = max(map(len, seqs))
        ids_t = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        lab_t = torch.tensor([lb + [-100] * (width - len(lb)) for lb in labels])
        att_t = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        loss = model(input_ids=ids_t, attention_mask=att_t, labels=lab_t).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return sum(losses) / len(losses)


# ------------------------------------------------------------------------------------------------ one side


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_side(workload: str, side: str, rows: int, length: int, tokens: int, items: int, spec: str,
             train: tuple[int, int, int, int] = (16, 2, 8, 512)) -> dict[str, Any]:  # fmt: skip
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    if workload == "training":
        return _run_training(side, train)
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


def _run_training(side: str, train: tuple[int, int, int, int]) -> dict[str, Any]:
    """Both sides of the training workload: (rows, batch, steps, max_length)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clca.llm._embedded import embedded_model_dir

    n, batch, steps, length = train
    d = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(str(d))
    rows = train_rows(n, length)
    with safe_open(str(d / "model.safetensors"), "pt") as f:  # float32 weights, without loading them here
        weights = 4 * sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    t0 = time.perf_counter()
    if side == "clca":
        loss = _train_clca(rows, batch, steps, length)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32)
        loss = _train_plain(model, tok, rows, batch, steps, length)
    return {"peak_mb": _peak_mb(), "weights_mb": weights / 2**20, "s": time.perf_counter() - t0,
            "budget": f"training {side}: {n} rows, batch {batch}, {steps} steps, mean loss {loss:.4f}"}  # fmt: skip


# ------------------------------------------------------------------------------------------------ driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=24, help="long prompts (the demo's intentions stage: 24 turns)")
    ap.add_argument("--length", type=int, default=1000, help="tokens of each long prompt, about")
    ap.add_argument("--tokens", type=int, default=32, help="tokens generated per long prompt")
    ap.add_argument("--items", type=int, default=64, help="scored prompts")
    ap.add_argument("--train-rows", type=int, default=16, help="training rows (training workload)")
    ap.add_argument("--train-batch", type=int, default=2, help="rows per step (the demo: 2)")
    ap.add_argument("--train-steps", type=int, default=8, help="optimiser steps")
    ap.add_argument("--train-length", type=int, default=512, help="tokens per row, at most (the demo: 512)")
    ap.add_argument("--workloads", default="long_prompts,scoring,training")
    ap.add_argument("--model", default="embedded", help="clca's model string (e.g. embedded?max_kv_mb=2048)")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        train = (a.train_rows, a.train_batch, a.train_steps, a.train_length)
        print(json.dumps(run_side(a.workload, a.side, a.rows, a.length, a.tokens, a.items, a.model, train)))
        return
    worst = 0.0
    for w in a.workloads.split(","):
        res = {}
        for side in ("clca", "plain"):
            cmd = [sys.executable, __file__, "--side", side, "--workload", w, "--rows", str(a.rows),
                   "--length", str(a.length), "--tokens", str(a.tokens), "--items", str(a.items),
                   "--model", a.model, "--train-rows", str(a.train_rows), "--train-batch", str(a.train_batch),
                   "--train-steps", str(a.train_steps), "--train-length", str(a.train_length)]  # fmt: skip
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
