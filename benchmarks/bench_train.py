"""Training throughput: `clca train` (train_lora) vs a plain TRL SFTTrainer script, same data/model/settings.

Both runs train a LoRA adapter on the same messages JSONL with the same chat template (generation
markers), LoRA settings, batch size, sequence length, seed and number of steps, in this process,
alternating A/B to spread warm-up and machine noise. Throughput = tokens trained (TRL's num_tokens)
/ train_runtime, as the Trainer reports them (model loading and adapter saving are not counted).
The LAST line printed is `ratio=<clca tokens/s / plain tokens/s>` (target >= 0.95).

  python benchmarks/bench_train.py [--steps 8] [--repeats 3] [--batch 2] [--max-length 96] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

TOPICS = ["tea", "a festival", "the train", "a gift", "the weather", "dinner", "a new job", "the market"]


def write_data(d: Path, n: int = 32) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    with (d / "train.jsonl").open("w") as f:
        for i in range(n):
            t = TOPICS[i % len(TOPICS)]
            msgs = [
                {"role": "system", "content": f"You are a polite neighbour. Conversation {i}."},
                {"role": "user", "content": f"Shall we talk about {t}? I have been thinking about it all day."},
                {"role": "assistant", "content": f"Gladly. I think {t} matters, and I would like to hear your view."},
                {"role": "user", "content": "Thank you, that is kind of you."},
                {"role": "assistant", "content": f"It is my pleasure; tell me more about {t} whenever you like."},
            ]
            f.write(json.dumps({"messages": msgs}) + "\n")
    return d


def run_clca(data: Path, out: Path, a: argparse.Namespace) -> float:
    from clca.train import TrainConfig, train_lora

    cfg = TrainConfig(
        preset="paper",
        target_modules=["q_proj", "v_proj"],
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.05,
        learning_rate=1e-4,
        per_device_train_batch_size=a.batch,
        max_steps=a.steps,
        max_length=a.max_length,
        logging_steps=1,
        save_steps=10**6,
        eval=False,
        progress=False,
        torch_threads=a.threads,
        seed=0,
    )
    res = train_lora(data, cfg, out)
    return res.tokens_per_second


def run_plain(data: Path, out: Path, a: argparse.Namespace) -> float:
    """What a user would write with TRL directly."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from clca.llm import embedded_model_dir

    torch.set_num_threads(a.threads)
    path = str(embedded_model_dir())
    tok = AutoTokenizer.from_pretrained(path)
    # SmolLM2's template has no {% generation %} markers; the plain script needs one too (same file as clca's)
    tok.chat_template = (Path(__file__).parents[1] / "src/clca/train/chat_templates/smollm2_training.jinja").read_text()
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    ds = load_dataset("json", data_files=str(data / "train.jsonl"), split="train")
    args = SFTConfig(
        output_dir=str(out),
        learning_rate=1e-4,
        per_device_train_batch_size=a.batch,
        max_steps=a.steps,
        max_length=a.max_length,
        assistant_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        bf16=bf16,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    peft_cfg = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_cfg)
    out_metrics = trainer.train()
    tokens = next(h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h)
    return tokens / out_metrics.metrics["train_runtime"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (ignored work on GPU)")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = write_data(root / "data")
    clca, plain = [], []
    for r in range(a.repeats):
        order = [("clca", run_clca, clca), ("plain", run_plain, plain)]
        if r % 2:
            order.reverse()
        for name, fn, acc in order:
            tps = fn(data, root / f"{name}-{r}", a)
            acc.append(tps)
            print(f"run {r} {name}: {tps:.1f} tokens/s", flush=True)
    # best of N: on a shared machine, other load only ever slows a run down, so the fastest run of each
    # side is the closest to its own speed; the medians are printed too
    c, q = max(clca), max(plain)
    print(f"median: clca {statistics.median(clca):.1f}, plain {statistics.median(plain):.1f} tokens/s")
    print(f"clca train: {c:.1f} tokens/s (best of {len(clca)}); plain TRL: {q:.1f} tokens/s (best of {len(plain)})")
    print(f"ratio={c / q:.3f}")


if __name__ == "__main__":
    main()
