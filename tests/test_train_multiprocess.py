"""Multi-process training for real: `accelerate launch --num_processes 2` (gloo, CPU) on the embedded model.

Two processes with 2 rows each against one process with 4 rows, on a 4-row dataset: every optimiser step
sees the whole dataset in both runs (the same global batch, whatever order the samplers choose), LoRA
dropout is off, so the loss curves must agree up to float summation order. Tolerance: 1e-3 relative per
step (the losses are around 3-5; a step taken with the wrong gradient, e.g. one rank's only or a sum
instead of a mean, moves the next loss by far more, as the check of the single-process curve shows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import tiny_dataset

from clca.train import TrainConfig, train_lora

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "accelerate" / "ddp_cpu.yaml"
STEPS = 3
REL_TOL = 1e-3
SETTINGS = {
    "max_steps": STEPS,
    "max_length": 48,
    "logging_steps": 1,
    "learning_rate": 1e-2,  # large, so that a wrong update shows in the next step's loss
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,  # no randomness that would differ between the processes
    "eval": False,
    "save_steps": STEPS,
    "torch_threads": 1,
    "progress": False,
}


def _losses(adapter: Path) -> list[float]:
    hist = json.loads((adapter / "log_history.json").read_text())
    return [float(h["loss"]) for h in hist if "loss" in h]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")  # 4 training rows
    single = train_lora(data, TrainConfig(per_device_train_batch_size=4, **SETTINGS), tmp_path / "single")
    sets = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG), "--num_processes", "2",
        "-m", "clca.cli.main", "train", "run", str(data), "--out", str(out), "--batch-size", "2", "--quiet", *sets,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = out / "checkpoints" / f"checkpoint-{STEPS}"
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}  # 2 ranks

    one, two = _losses(tmp_path / "single"), _losses(out)
    assert len(one) == len(two) == STEPS, (one, two)
    for step, (a, b) in enumerate(zip(one, two, strict=True), 1):
        assert abs(a - b) <= REL_TOL * abs(a), f"step {step}: one process {a}, two processes {b}"
    assert abs(one[-1] - one[0]) > 50 * REL_TOL * abs(one[0])  # the steps moved the loss: the check has teeth

    record = json.loads((out / "clca_adapter.json").read_text())
    assert record["result"]["global_step"] == STEPS
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(record["base_model_dir"])
    model = PeftModel.from_pretrained(base, str(out))  # the adapter written by rank 0 loads
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert single.global_step == STEPS
