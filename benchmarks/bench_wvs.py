"""WVS answering throughput: option log-probabilities vs sampled answers vs lm-evaluation-harness.

Same model (the embedded SmolLM2-135M-Instruct unless --model), same prompts (persona prompts of
--personas Egyptian personas for the first --items items), same run of this script, response cache off:

1. clca logprobs mode: `ask(mode="logprobs")` for every prompt, concurrently (the backend batches and
   reuses each persona's shared prefix);
2. clca generate mode (the paper's protocol): `ask(mode="generate", samples=--samples)` per prompt,
   enough samples to estimate a distribution; run on the first --gen-prompts prompts only (it is slow);
3. lm-evaluation-harness: its HFLM model class on the same model directory, one loglikelihood request
   per (prompt, option number), the prompt rendered with the same chat template.

lm-eval is not a clca dependency: the script installs it into benchmarks/.venv-lmeval (a venv that
sees the project venv's packages through a .pth file) on first use and runs part 3 there.

    python benchmarks/bench_wvs.py                     # 2 personas x 44 items
    python benchmarks/bench_wvs.py --items 10 --gen-prompts 4
    python benchmarks/bench_wvs.py --threads 1         # 1 torch thread on both sides (busy shared CPU)
    python benchmarks/bench_wvs.py --quick             # 2 personas x 12 items, 2 generate prompts: minutes

Prints prompts/s of each, where the engine's time went in logprobs mode (`_profile.report`), a plain
batched transformers forward of the same prompts (same run) and
`efficiency=<logprobs-mode prompt tok/s / plain forward tok/s>`; the LAST line is
`ratio=<clca logprobs prompts/s / lm-eval prompts/s>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import site
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
LMEVAL_VENV = HERE / ".venv-lmeval"

_LMEVAL_CHILD = r"""
import json, sys, time
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
cfg = json.load(open(sys.argv[1]))
if cfg.get("threads"):
    torch.set_num_threads(cfg["threads"])
lm = HFLM(pretrained=cfg["model_dir"], device="cpu", batch_size=cfg["batch_size"], dtype=cfg["dtype"])
reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(ctx, cont), idx=k)
        for k, (ctx, cont) in enumerate(cfg["requests"])]
lm.loglikelihood(reqs[: min(4, len(reqs))], disable_tqdm=True)  # warm-up
t = time.perf_counter()
out = lm.loglikelihood(reqs, disable_tqdm=True)
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(out), "first": [o[0] for o in out[:4]]}))
"""


def ensure_lmeval() -> Path:
    if subprocess.run([sys.executable, "-c", "import lm_eval"], capture_output=True).returncode == 0:
        return Path(sys.executable)  # installed beside clca
    py = LMEVAL_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import lm_eval"], capture_output=True).returncode == 0:
        return py
    print(f"installing lm-eval into {LMEVAL_VENV} (once) ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(LMEVAL_VENV)
    lib = next((LMEVAL_VENV / "lib").glob("python*")) / "site-packages"
    (lib / "_clca_main_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "lm-eval"], check=True)
    return py


def build_prompts(n_personas: int, n_items: int) -> list[tuple]:
    from clca.wvs import default_questionnaire, load_reference, personas_from_marginals

    q = default_questionnaire()
    ref = load_reference()
    personas = personas_from_marginals(ref.countries["EGY"].marginals, "EGY", n_personas, seed=0)
    items = [i for i in q if i.id in ref.countries["EGY"].items][:n_items]
    return [(p, it) for p in personas for it in items]  # persona by persona


async def run_clca(
    model: str,
    prompts: list[tuple],
    mode: str,
    samples: int,
    concurrency: int,
    threads: int | None,
    profile: bool,
    dtype: str = "float32",
) -> float:
    from _profile import Recorder, plain_forward_rate, report, report_same_work

    from clca.llm import load_model
    from clca.wvs import ask

    llm = load_model(model, cache=False, dtype=dtype, **({"torch_threads": threads} if threads else {}))
    rec = Recorder(llm)
    sem = asyncio.Semaphore(concurrency)

    async def one(p, it):  # noqa: ANN001, ANN202
        async with sem:
            return await ask(llm, style="persona", persona=p, item=it, variant="base", mode=mode, samples=samples)

    try:
        await one(*prompts[0])  # warm-up: loads the model
        llm.engine._prefix_cache.clear()
        eng = llm.engine
        st0, pre0, p0, g0 = eng.stats.copy(), eng.prefill_tokens, len(rec.prompts), rec.generated
        eng.prefill_log = []  # this run's prompt work, for the same-work reference
        t = time.perf_counter()
        answers = await asyncio.gather(*(one(p, it) for p, it in prompts))
        secs = time.perf_counter() - t
        stats, computed = eng.stats.minus(st0), eng.prefill_tokens - pre0
        work, eng.prefill_log = eng.prefill_log, None
    finally:
        await llm.aclose()
    assert all(abs(sum(a.with_safeguarded()) - 1) < 1e-6 for a in answers)
    if profile:
        asked = rec.prompts[p0:]
        print(f"[{mode}] prompt tokens asked {sum(len(p) for p in asked)}, computed {computed}")
        rates = report(mode, stats, secs, computed, len(asked), rec.generated - g0)
        if threads:
            import torch

            torch.set_num_threads(threads)
        plain = plain_forward_rate(llm, asked)
        print(
            f"plain batched forward (transformers, batch 8, right-padded) of the same prompts: {plain:.1f} prompt tok/s"
        )
        report_same_work(llm, work, rates["prompt_tok_s"])
        print(f"efficiency={rates['prompt_tok_s'] / plain:.3f}")
    return secs


def run_lmeval(prompts: list[tuple], batch_size: int, threads: int | None, dtype: str = "float32") -> float:
    from transformers import AutoTokenizer

    from clca.llm import embedded_model_dir
    from clca.wvs import build_messages

    model_dir = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    requests = []
    for p, it in prompts:
        msgs = build_messages("persona", p, it, "base", 0)
        ctx = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        requests += [(ctx, str(k + 1)) for k in range(it.scale_length)]
    py = ensure_lmeval()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"model_dir": str(model_dir), "batch_size": batch_size, "requests": requests, "threads": threads,
                   "dtype": dtype}, fh)  # fmt: skip
        cfg = fh.name
    try:
        out = subprocess.run([str(py), "-c", _LMEVAL_CHILD, cfg], capture_output=True, text=True,
                             env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
    finally:
        os.unlink(cfg)
    if out.returncode != 0:
        sys.exit(f"lm-eval run failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return float(res["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--personas", type=int, default=2)
    ap.add_argument("--items", type=int, default=44)
    ap.add_argument("--samples", type=int, default=20, help="sampled answers per prompt in generate mode")
    ap.add_argument("--gen-prompts", type=int, default=8, help="prompts timed in generate mode")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16, help="lm-eval HFLM batch size")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for clca and lm-eval (default: torch's)")
    ap.add_argument("--dtype", default="float32", help="model dtype of clca and lm-eval alike (e.g. bfloat16)")
    ap.add_argument("--skip-lmeval", action="store_true", help="last line is then the logprobs/generate ratio")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--quick", action="store_true", help="12 items, 2 prompts x 10 samples in generate mode")
    args = ap.parse_args()
    if args.quick:
        args.items, args.gen_prompts, args.samples = 12, 2, 10

    prompts = build_prompts(args.personas, args.items)
    n = len(prompts)
    print(f"dtype={args.dtype}")
    t_lp = asyncio.run(run_clca(args.model, prompts, "logprobs", 1, args.concurrency, args.threads, True, args.dtype))
    lp = n / t_lp
    print(f"clca logprobs:  {n} prompts in {t_lp:.2f}s = {lp:.2f} prompts/s")
    gp = math.nan
    if not args.skip_generate:
        gen = prompts[: args.gen_prompts]
        t_gen = asyncio.run(
            run_clca(args.model, gen, "generate", args.samples, args.concurrency, args.threads, False, args.dtype)
        )
        gp = len(gen) / t_gen
        print(f"clca generate:  {len(gen)} prompts x {args.samples} samples in {t_gen:.2f}s = {gp:.3f} prompts/s")
        print(f"logprobs vs generate: {lp / gp:.1f}x")
    if args.skip_lmeval:
        print(f"ratio={lp / gp:.3f}")
        return
    t_lm = run_lmeval(prompts, args.batch_size, args.threads, args.dtype)
    lm = n / t_lm
    print(f"lm-eval HFLM:   {n} prompts in {t_lm:.2f}s = {lm:.2f} prompts/s")
    print(f"ratio={lp / lm:.3f}")


if __name__ == "__main__":
    main()
