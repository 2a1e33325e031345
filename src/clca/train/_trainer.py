"""train_lora: LoRA SFT of a causal LM on a clca dataset with TRL's SFTTrainer and PEFT."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ..errors import ConfigError, DataError
from ._chat_template import training_chat_template
from ._config import TrainConfig
from ._model import resolve_model_dir, write_adapter_record

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
#: vocabulary columns per tile of TRL's fused LM head (its loss without the full logits). TRL's own default is
#: 32,768 columns: on a device without Triton each tile of tokens x columns is copied in float32 several times
#: (scaled logits, exponentials, masks): for 8 rows of 512 tokens about 2.5 GB in the loss alone. A narrower
#: tile scores the same tokens with the same online log-sum-exp, in the same time, in a fraction of the memory.
LM_HEAD_TILE_COLUMNS = 4096


class TrainResult(BaseModel):
    adapter_dir: Path
    base_model: str
    global_step: int
    train_loss: float | None
    eval_loss: float | None
    train_tokens: int
    train_runtime_s: float
    tokens_per_second: float
    resumed_from: str | None = None


def _check_messages_jsonl(path: Path) -> None:
    """Each non-blank line a JSON object with a `messages` list (a one-line DataError naming the line)."""
    from .._files import iter_jsonl, read_text

    text = read_text(path, "dataset file")
    if not text.strip() and path.name != "validation.jsonl":
        raise DataError(f"{path}: no rows (the file is empty)")
    for n, obj in iter_jsonl(text.splitlines(), str(path)):
        if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
            raise DataError(f"{path}: line {n}: expected an object with a 'messages' list")
        _check_row(obj["messages"], f"{path}: line {n}")


def load_splits(dataset_dir: str | Path) -> tuple[Any, Any | None]:
    """(train, validation or None) with a single `messages` column, from a clca dataset dir or JSONL."""
    from datasets import load_dataset, load_from_disk

    d = Path(dataset_dir)
    if not d.exists():
        raise DataError(f"{d}: no dataset found (nothing at this path)")
    for f in (d,) if d.is_file() else (d / "train.jsonl", d / "validation.jsonl"):
        if f.is_file() and f.suffix == ".jsonl" and not (d / "hf").is_dir():
            _check_messages_jsonl(f)
    if (d / "hf").is_dir():
        dd = load_from_disk(str(d / "hf"))
        train, val = dd["train"], dd.get("validation")
    elif d.is_file() and d.suffix == ".jsonl":
        train, val = load_dataset("json", data_files=str(d), split="train"), None
    elif (d / "train.jsonl").is_file():
        files = {"train": str(d / "train.jsonl")}
        if (d / "validation.jsonl").is_file() and (d / "validation.jsonl").stat().st_size > 0:
            files["validation"] = str(d / "validation.jsonl")
        dd = load_dataset("json", data_files=files)
        train, val = dd["train"], dd.get("validation")
    else:
        raise DataError(f"{d}: no dataset found (expected a `clca dataset build` directory or a messages .jsonl)")
    if "messages" not in train.column_names:
        raise DataError(f"{d}: rows need a 'messages' column")
    train = train.select_columns(["messages"])
    if val is not None:
        val = val.select_columns(["messages"]) if len(val) else None
    if len(train) == 0:
        raise DataError(f"{d}: the train split is empty")
    for name, split in (("train", train), ("validation", val)):
        for n, row in enumerate(split or [], 1):
            _check_row(row["messages"], f"{d}: {name} row {n}")
    return train, val


def _check_row(messages: Any, where: str) -> None:
    """A training row needs at least one assistant message with text (the loss is on those tokens)."""
    if not isinstance(messages, list) or not any(
        isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str) and m["content"]
        for m in messages
    ):
        raise DataError(f"{where}: no assistant message with text; every training row needs one")


def _finite_guard() -> Any:
    """A TrainerCallback that stops training at the first logged non-finite loss or gradient norm."""
    from transformers import TrainerCallback

    class Guard(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            for k in ("loss", "grad_norm"):
                v = (logs or {}).get(k)
                if isinstance(v, int | float) and not math.isfinite(v):
                    raise DataError(
                        f"training stopped at step {state.global_step}: the {k.replace('_', ' ')} became "
                        f"{v}; nothing was saved - lower the learning rate (or check the data)"
                    )

    return Guard()


def _check_finite_weights(model: Any) -> None:
    import torch

    for name, p in model.named_parameters():
        if p.requires_grad and not bool(torch.isfinite(p).all()):
            raise DataError(
                f"training stopped: the trained weight {name} holds non-finite values; nothing was saved - "
                "lower the learning rate (or check the data)"
            )


def _precision(cfg: TrainConfig) -> dict[str, bool]:
    import torch

    p = cfg.precision
    if p == "auto":
        p = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": p == "bf16", "fp16": p == "fp16"}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sft_config(cfg: TrainConfig, out_dir: Path, has_eval: bool) -> Any:
    from trl import SFTConfig

    epoch_or_steps = ("steps", cfg.eval_steps) if cfg.eval_steps else ("epoch", None)
    save = ("steps", cfg.save_steps) if cfg.save_steps else ("epoch", None)
    do_eval = has_eval and cfg.eval
    kw: dict[str, Any] = dict(
        output_dir=str(out_dir / CHECKPOINTS),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size or cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_length=cfg.max_length,
        packing=cfg.packing,
        assistant_only_loss=cfg.assistant_only_loss,
        eval_strategy=epoch_or_steps[0] if do_eval else "no",
        eval_steps=epoch_or_steps[1],
        save_strategy=save[0],
        save_steps=save[1],
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        dataloader_num_workers=cfg.dataloader_num_workers,
        report_to=cfg.report_to or "none",
        disable_tqdm=not cfg.progress,
        dataloader_pin_memory=_cuda(),
        **_precision(cfg),
    )
    if cfg.packing:
        kw["padding_free"] = True
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _cuda():
        kw["use_cpu"] = True  # several processes on CPUs (accelerate launch, torchrun): gloo, not one run each
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing
    fields = getattr(SFTConfig, "__dataclass_fields__", {})
    ckpt_name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    kw[ckpt_name] = cfg.gradient_checkpointing
    return SFTConfig(**kw)


def lora_config(cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _complete_checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoint directories in step order whose trainer_state.json (the Trainer writes it last) parses.

    A run killed while saving leaves a checkpoint directory without it; such leftovers are removed so
    that resuming starts from the last complete checkpoint instead of failing on the broken one.
    """
    found: list[tuple[int, Path]] = []
    for d in ckpt_root.glob("checkpoint-*") if ckpt_root.is_dir() else []:
        step = d.name.removeprefix("checkpoint-")
        if not (d.is_dir() and step.isdigit()):
            continue
        try:
            json.loads((d / "trainer_state.json").read_text())
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s (the run stopped while saving it)", d.name)
            shutil.rmtree(d, ignore_errors=True)
            continue
        found.append((int(step), d))
    return [d for _, d in sorted(found)]


def _checkpoint(out_dir: Path, resume: bool | str) -> str | None:
    ckpt_root = out_dir / CHECKPOINTS
    if isinstance(resume, str):
        if not Path(resume).is_dir():
            raise ConfigError(f"--resume {resume}: checkpoint directory not found")
        return resume
    complete = _complete_checkpoints(ckpt_root)
    last = str(complete[-1]) if complete else None
    if resume:
        return last  # None: nothing to resume yet, start at step 0
    if last is not None:
        raise ConfigError(f"{out_dir} already holds checkpoints; pass --resume to continue, or use a new --out")
    return None


def build_trainer(
    dataset_dir: str | Path,
    cfg: TrainConfig,
    out_dir: str | Path,
    callbacks: list[Any] | None = None,
) -> tuple[Any, Any, Any]:
    """The configured SFTTrainer (datasets tokenized and masked), its tokenizer, and the original template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    out = Path(out_dir)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    train_ds, val_ds = load_splits(dataset_dir)
    base_dir = resolve_model_dir(cfg.model)
    tok = AutoTokenizer.from_pretrained(base_dir)
    original_template = tok.chat_template
    if cfg.assistant_only_loss:
        tok.chat_template = training_chat_template(tok, cfg.chat_template)
    precision = _precision(cfg)
    dtype = torch.bfloat16 if precision["bf16"] else torch.float16 if precision["fp16"] else torch.float32
    attn = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True, **attn)
    args = sft_config(cfg, out, has_eval=val_ds is not None)
    narrow_lm_head_tiles()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds if args.eval_strategy != "no" else None,
        processing_class=tok,
        peft_config=lora_config(cfg),
        callbacks=callbacks,
    )
    return trainer, tok, original_template


def narrow_lm_head_tiles(columns: int = LM_HEAD_TILE_COLUMNS) -> bool:
    """Bound the tiles of TRL's fused LM head to `columns` vocabulary columns (see LM_HEAD_TILE_COLUMNS).

    TRL reads the width from a module attribute when the loss is computed; it has no public setting. False
    (and nothing changed) where a TRL version lacks that attribute: `tests/test_train_memory.py` fails then.
    """
    import trl.trainer.utils as trl_utils

    if not isinstance(getattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", None), int):
        return False
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = columns
    return True


def train_lora(
    dataset_dir: str | Path,
    cfg: TrainConfig | None = None,
    out_dir: str | Path = "adapter",
    *,
    resume: bool | str = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train a LoRA adapter; the adapter (plus tokenizer and clca_adapter.json) lands in out_dir.

    resume=True continues from the last checkpoint in out_dir/checkpoints when there is one (else starts
    at step 0); a path resumes from that checkpoint. Without resume, existing checkpoints are an error.
    """
    cfg = cfg or TrainConfig()
    from .._outputs import check_output
    from ..memory import bound_heap, tune_malloc

    tune_malloc()  # one arena, large blocks given back when freed (clca.memory)
    bound_heap()  # where memory is short: freed activations go back to the OS (clca.memory)

    out = Path(out_dir)
    own = (CHECKPOINTS, "adapter_config.json", "train_config.yaml")
    check_output(out, kind="dir", inputs=[dataset_dir, cfg.chat_template], overwrite=False, own=own)
    load_splits(dataset_dir)  # fail on bad data before creating anything
    out.mkdir(parents=True, exist_ok=True)
    ckpt = _checkpoint(out, resume)
    trainer, tok, original_template = build_trainer(dataset_dir, cfg, out, [*(callbacks or []), _finite_guard()])
    before = {d.name for d in (out / CHECKPOINTS).glob("checkpoint-*")}
    try:
        metrics = _train(trainer, cfg, ckpt)
    except DataError:  # non-finite numbers: the checkpoints of this call hold them too
        for d in (out / CHECKPOINTS).glob("checkpoint-*"):
            if d.name not in before:
                shutil.rmtree(d, ignore_errors=True)
        raise
    eval_loss = None
    if trainer.eval_dataset is not None:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    tokens = int(next((h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h), 0))
    runtime = float(metrics.get("train_runtime", 0.0))
    result = TrainResult(
        adapter_dir=out,
        base_model=cfg.model,
        global_step=trainer.state.global_step,
        train_loss=metrics.get("train_loss"),
        eval_loss=eval_loss,
        train_tokens=tokens,
        train_runtime_s=runtime,
        tokens_per_second=tokens / runtime if runtime > 0 else 0.0,
        resumed_from=ckpt,
    )
    tok.chat_template = original_template  # ship the model's own template, not the training copy
    _save_adapter(trainer, tok, out, cfg, result)
    return result


def _train(trainer: Any, cfg: TrainConfig, ckpt: str | None) -> dict[str, Any]:
    """Train (or take a finished checkpoint as it is); a DataError when the loss or the weights end non-finite."""
    if ckpt is not None and _finished(Path(ckpt), cfg):
        # the run was stopped after its last checkpoint (while evaluating or saving the adapter): the
        # Trainer would take one more step from it, so the adapter is taken from that checkpoint as it is
        metrics = _restore_finished(trainer, Path(ckpt))
    else:
        metrics = dict(trainer.train(resume_from_checkpoint=ckpt).metrics)
        if ckpt is not None:  # the Trainer averages over the resumed steps only; the log has every step
            metrics["train_loss"] = _logged_train_loss(trainer.state.log_history)
    loss = metrics.get("train_loss")
    if isinstance(loss, float) and not math.isfinite(loss):
        raise DataError(f"training stopped: the train loss is {loss}; nothing was saved - lower the learning rate")
    _check_finite_weights(trainer.model)
    return metrics


def _finished(ckpt: Path, cfg: TrainConfig) -> bool:
    """True when a checkpoint holds the last step of the planned training (max_steps, or every epoch)."""
    state = json.loads((ckpt / "trainer_state.json").read_text())
    planned = int(state.get("max_steps") or 0)
    if cfg.max_steps and cfg.max_steps > 0 and cfg.max_steps != planned:
        return int(state.get("global_step", 0)) >= cfg.max_steps  # the user changed max_steps
    return planned > 0 and int(state.get("global_step", 0)) >= planned


def _restore_finished(trainer: Any, ckpt: Path) -> dict[str, Any]:
    """Load a finished checkpoint's adapter weights and trainer state; the train metrics from its log."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    set_peft_model_state_dict(trainer.model, load_file(str(ckpt / "adapter_model.safetensors")))
    trainer.state = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    return {"train_loss": _logged_train_loss(trainer.state.log_history), "train_runtime": 0.0}


def _logged_train_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean training loss over every step, from the log (each logged loss is the mean since the last log)."""
    total, prev = 0.0, 0
    for h in log_history:
        if "loss" in h and "step" in h and int(h["step"]) > prev:
            total += float(h["loss"]) * (int(h["step"]) - prev)
            prev = int(h["step"])
    return total / prev if prev else None


def _save_adapter(trainer: Any, tok: Any, out: Path, cfg: TrainConfig, result: TrainResult) -> None:
    """Save into out/.adapter-tmp, then move the files into out (no half-written adapter).

    Every rank calls trainer.save_model (it gathers ZeRO-3 / FSDP shards); rank 0 writes the rest.
    """
    tmp = out / ".adapter-tmp"
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        try:
            tok.save_pretrained(str(tmp))  # overwrites the training template save_model wrote
            extra = {
                "train_config": json.loads(cfg.model_dump_json()),
                "result": json.loads(result.model_dump_json()),
            }
            write_adapter_record(tmp, cfg.model, resolve_model_dir(cfg.model), extra)
            (tmp / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
            (out / "train_config.yaml").write_text(yaml.safe_dump(extra["train_config"], sort_keys=False))
            for f in tmp.iterdir():
                if f.is_file():
                    os.replace(f, out / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
