"""LoRA training on the real embedded model (CPU): loss mask, loss goes down, adapter, resume, merge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_dataset_store import make_run

from clca.dataset import DatasetConfig, build_dataset
from clca.errors import ConfigError, DataError, ModelStringError
from clca.train import TrainConfig, build_trainer, load_train_config, train_lora, training_chat_template

TINY = [
    ("Greet me.", "Konnichiwa, welcome to Kyoto."),
    ("Offer tea.", "Please have some green tea."),
    ("Say goodbye.", "Sayonara, see you tomorrow."),
    ("Thank the host.", "Thank you for the lovely meal."),
]
STEPS = 12


def _conv(u: str, a: str) -> dict:
    msgs = [
        {"role": "system", "content": "Reply."},
        {"role": "user", "content": u},
        {"role": "assistant", "content": a},
    ]
    return {"messages": msgs}


def tiny_dataset(d: Path) -> Path:
    """A fixed small set of short conversations (train) and one held-out row (validation)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.jsonl").write_text("".join(json.dumps(_conv(u, a)) + "\n" for u, a in TINY))
    (d / "validation.jsonl").write_text(json.dumps(_conv("Greet me again.", "Konnichiwa again.")) + "\n")
    return d


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(
        max_steps=STEPS,
        per_device_train_batch_size=2,
        max_length=48,
        logging_steps=1,
        learning_rate=3e-3,
        lora_r=8,
        lora_alpha=16,
        save_steps=STEPS // 2,
        eval_steps=STEPS,
        progress=False,
        torch_threads=1,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train")
    data = tiny_dataset(root / "data")
    res = train_lora(data, tiny_cfg(), root / "adapter")
    return root, data, res


def _expected_mask(tok, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids and loss mask built segment by segment, independently of the template's markers."""
    ids: list[int] = []
    mask: list[int] = []

    def seg(text: str, m: int) -> None:
        t = tok(text, add_special_tokens=False)["input_ids"]
        ids.extend(t)
        mask.extend([m] * len(t))

    if messages[0]["role"] != "system":  # SmolLM2's template adds its default system prompt
        seg("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n", 0)
    for msg in messages:
        seg(f"<|im_start|>{msg['role']}\n", 0)
        seg(msg["content"] + "<|im_end|>", int(msg["role"] == "assistant"))
        seg("\n", 0)
    return ids, mask


@pytest.mark.slow
def test_loss_mask_token_by_token_on_both_tasks(tmp_path: Path) -> None:
    """Every assistant token (and its end-of-turn token) has a label; no system/user token does."""
    store = make_run(tmp_path / "run", n_scenarios=2, cultures=("JPN",))
    build_dataset(store, DatasetConfig(tokenizer=None, val_fraction=0.0), tmp_path / "ds", progress=False)
    trainer, tok, _ = build_trainer(tmp_path / "ds", TrainConfig(max_length=2048, torch_threads=1), tmp_path / "out")
    rows = [json.loads(x) for x in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    prepared = trainer.train_dataset
    assert len(prepared) == len(rows) and {r["task"] for r in rows} == {"dialogue", "intent"}
    checked = 0
    for i, row in enumerate(rows):
        want_ids, want_mask = _expected_mask(tok, row["messages"])
        assert prepared[i]["input_ids"] == want_ids
        batch = trainer.data_collator([prepared[i]])
        labels = batch["labels"][0].tolist()
        has_label = [int(lab != -100) for lab in labels]
        # labels are the input ids at trained positions (the model shifts them internally)
        assert has_label == want_mask, f"row {row['id']}"
        assert all(lab == t for lab, t, m in zip(labels, want_ids, want_mask, strict=True) if m)
        trained_text = tok.decode([t for t, m in zip(want_ids, want_mask, strict=True) if m])
        assert trained_text == "".join(m["content"] + "<|im_end|>" for m in row["messages"] if m["role"] == "assistant")
        checked += len(labels)
    assert checked > 3000


@pytest.mark.slow
def test_training_lowers_loss_and_writes_a_peft_adapter(trained) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clca.llm import embedded_model_dir

    root, _, res = trained
    adapter = root / "adapter"
    assert res.global_step == STEPS and res.train_tokens > 0 and res.tokens_per_second > 0
    assert res.eval_loss is not None and math.isfinite(res.eval_loss)
    losses = [h["loss"] for h in json.loads((adapter / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) >= STEPS - 1
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.7 * first, losses
    record = json.loads((adapter / "clca_adapter.json").read_text())
    assert record["base_model"] == "embedded" and record["result"]["global_step"] == STEPS
    assert "{% generation %}" not in AutoTokenizer.from_pretrained(adapter).chat_template  # the model's own template
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    ids = tok.apply_chat_template(_conv(*TINY[0])["messages"][:2], add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        before = base(ids).logits
        lora = PeftModel.from_pretrained(base, str(adapter))
        after = lora(ids).logits
    assert (after - before).abs().max().item() > 1e-2
    # the adapter is a model string for every stage (the registry loads it lazily)
    from clca.llm import load_model
    from clca.train import adapter_base_model

    assert adapter_base_model(adapter) == "embedded"
    assert "+lora:" in load_model(f"embedded+lora:{adapter}").model_id


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_step(trained) -> None:
    from transformers import TrainerCallback

    root, data, _ = trained
    adapter = root / "adapter"
    assert (adapter / "checkpoints" / f"checkpoint-{STEPS}").is_dir()
    with pytest.raises(ConfigError, match="--resume"):
        train_lora(data, tiny_cfg(), adapter)
    seen: list[int] = []

    class FirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen.append(state.global_step)

    res = train_lora(data, tiny_cfg(max_steps=STEPS + 2), adapter, resume=True, callbacks=[FirstStep()])
    assert res.resumed_from is not None and res.resumed_from.endswith(f"checkpoint-{STEPS}")
    assert seen == [STEPS + 1, STEPS + 2] and res.global_step == STEPS + 2


@pytest.mark.slow
def test_merge_writes_safetensors_with_the_adapter_baked_in(trained, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from clca.cli.main import main
    from clca.llm import embedded_model_dir

    root, _, _ = trained
    out = tmp_path / "merged"
    with pytest.raises(SystemExit) as e:
        main(["train", "merge", str(root / "adapter"), "--out", str(out)])
    assert e.value.code in (0, None)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "{% generation %}" not in (out / "tokenizer_config.json").read_text() + (
        (out / "chat_template.jinja").read_text() if (out / "chat_template.jinja").exists() else ""
    )
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    with torch.no_grad():
        plain = base(ids).logits
        peft_model = PeftModel.from_pretrained(base, str(root / "adapter"))
        want, got = peft_model(ids).logits, merged(ids).logits
    # Measured (torch 2.13.0+cpu, transformers 5.25.0, peft 0.21.2; this adapter, these 6 tokens): merged vs
    # PEFT float32 logits differ by at most 0.00066 with 1 torch thread and 0.0043 with 2, 4 or 8 threads,
    # while each of them lies 0.0019-0.0030 from a float64 merge of the same adapter (the ground truth; the
    # float64 merged and unmerged logits agree exactly). The logits' scale is max |l| = 31.6 and the adapter
    # moves them by up to 8.3. So the old atol=1e-3 failure was float32 rounding (the kernels' summation order
    # changes with the thread count), not a merge bug: the merged model keeps its tied embeddings (lm_head is
    # embed_tokens) and the adapter has no modules_to_save. Tolerance: 1e-3 of the logit scale (about 0.03:
    # 7x the largest rounding difference measured), and the adapter's own effect must stay far above it so a
    # merge that dropped the adapter still fails.
    tol = 1e-3 * want.abs().max().item()
    assert (got - want).abs().max().item() <= tol
    assert (want - plain).abs().max().item() > 30 * tol
    assert merged.config.tie_word_embeddings and torch.equal(merged.lm_head.weight, merged.model.embed_tokens.weight)


def test_resume_without_checkpoint_starts_fresh_and_missing_path_is_an_error(tmp_path: Path) -> None:
    from clca.train._trainer import _checkpoint

    assert _checkpoint(tmp_path, True) is None  # nothing to resume yet: step 0
    (tmp_path / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    assert _checkpoint(tmp_path, True).endswith("checkpoint-3")
    with pytest.raises(ConfigError, match="--resume"):
        _checkpoint(tmp_path, False)
    with pytest.raises(ConfigError, match="not found"):
        _checkpoint(tmp_path, str(tmp_path / "nope"))


def test_config_presets_yaml_and_overrides(tmp_path: Path) -> None:
    paper = load_train_config(preset="paper")
    assert (paper.target_modules, paper.lora_r, paper.learning_rate) == (["q_proj", "v_proj"], 4, 1e-4)
    assert (paper.per_device_train_batch_size * paper.gradient_accumulation_steps, paper.num_train_epochs) == (8, 3)
    y = tmp_path / "t.yaml"
    y.write_text("train:\n  preset: paper\n  learning_rate: 5.0e-5\n  lora_r: 16\n")
    cfg = load_train_config(y, {"lora_r": 32})
    assert (cfg.preset, cfg.learning_rate, cfg.lora_r, cfg.target_modules) == ("paper", 5e-5, 32, ["q_proj", "v_proj"])
    y.write_text("learning_rat: 1\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: learning_rat: unknown key"):
        load_train_config(y)
    with pytest.raises(ConfigError, match="packing puts several rows.*attn_implementation"):
        load_train_config(overrides={"packing": True})
    assert load_train_config(overrides={"packing": True, "attn_implementation": "flash_attention_2"}).packing
    with pytest.raises(ConfigError, match="unknown preset"):
        load_train_config(preset="huge")


def test_chat_template_with_generation_markers(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from clca.llm import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    tmpl = training_chat_template(tok)
    assert "{% generation %}" in tmpl
    for msgs in (_conv(*TINY[0])["messages"], _conv(*TINY[1])["messages"][1:]):
        assert tok.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(
            msgs, tokenize=False, chat_template=tmpl
        )
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="chat_template: FILE"):
        training_chat_template(tok)
    f = tmp_path / "t.jinja"
    f.write_text("{{ messages }}")
    with pytest.raises(ConfigError, match="generation"):
        training_chat_template(tok, f)


def test_cli_train_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clca.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "run", str(tmp_path / "nothing"), "--out", str(tmp_path / "a")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no dataset found" in err and "\n" not in err
    with pytest.raises(DataError):
        train_lora(tmp_path / "nothing", TrainConfig(), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_resume_skips_a_checkpoint_left_half_written_by_a_kill(tmp_path: Path) -> None:
    """A SIGKILL while the Trainer saves leaves checkpoint-N without trainer_state.json (written last):
    resuming uses the last complete checkpoint and removes the broken one."""
    from clca.train._trainer import CHECKPOINTS, _checkpoint

    root = tmp_path / "out" / CHECKPOINTS
    (root / "checkpoint-2").mkdir(parents=True)
    (root / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (root / "checkpoint-4").mkdir()
    (root / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"")  # saved model, no state yet
    (root / "checkpoint-6").mkdir()
    (root / "checkpoint-6" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert _checkpoint(tmp_path / "out", True) == str(root / "checkpoint-2")
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2"]
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        _checkpoint(tmp_path / "out", False)


def test_inference_options_do_not_reach_training(tmp_path: Path) -> None:
    from clca.train._model import adapter_base_model, resolve_model_dir, write_adapter_record

    base = tmp_path / "base"
    base.mkdir()
    assert resolve_model_dir(f"hf:{base}?max_batch=64&prefix_cache_mb=0") == str(base.resolve())
    with pytest.raises(ModelStringError, match="model directory not found"):  # local directories, as for inference
        resolve_model_dir("hf:/models/nowhere?max_batch=64")
    write_adapter_record(tmp_path, "hf:/models/base?max_batch=64", "/models/base", {})
    assert adapter_base_model(tmp_path) == "hf:/models/base"  # the record names the weights, not serving options


def test_attn_implementation_reaches_the_model(tmp_path: Path) -> None:
    """train.attn_implementation is the kernel the trained model runs (it was once accepted and ignored)."""
    store = make_run(tmp_path / "run", n_scenarios=1, cultures=("JPN",))
    build_dataset(store, DatasetConfig(tokenizer=None, val_fraction=0.0), tmp_path / "ds", progress=False)
    for kernel in ("eager", "sdpa"):
        cfg = TrainConfig(attn_implementation=kernel, torch_threads=1, eval=False)
        trainer, _, _ = build_trainer(tmp_path / "ds", cfg, tmp_path / f"out-{kernel}")
        assert trainer.model.get_base_model().config._attn_implementation == kernel


def test_validation_batches_default_to_the_training_batch() -> None:
    """A validation batch of 8 rows of 512 tokens where training takes 2 spiked the demo's train stage: the
    validation batch is the training batch unless set."""
    from clca.train._trainer import sft_config

    assert (
        sft_config(TrainConfig(per_device_train_batch_size=2), Path("out"), has_eval=True).per_device_eval_batch_size
        == 2
    )
    cfg = TrainConfig(per_device_train_batch_size=2, per_device_eval_batch_size=6)
    assert sft_config(cfg, Path("out"), has_eval=True).per_device_eval_batch_size == 6
