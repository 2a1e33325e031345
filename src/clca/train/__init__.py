"""LoRA fine-tuning (CLCA section 5) with TRL's SFTTrainer and PEFT, plus adapter merging.

`train_lora(dataset_dir, TrainConfig(...), out_dir)` writes a PEFT adapter directory that loads with
`PeftModel.from_pretrained` and records its base model (clca_adapter.json), so `embedded+lora:DIR`
and `hf:PATH+lora:DIR` resolve anywhere. `merge_adapter` writes a merged safetensors model.
"""

from ._chat_template import assistant_mask, has_generation_markers, training_chat_template
from ._config import PRESETS, TrainConfig, load_train_config, parse_set, with_preset
from ._merge import merge_adapter
from ._model import ADAPTER_RECORD, adapter_base_model, resolve_model_dir
from ._trainer import CHECKPOINTS, TrainResult, build_trainer, load_splits, train_lora

__all__ = [
    "ADAPTER_RECORD",
    "CHECKPOINTS",
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "adapter_base_model",
    "assistant_mask",
    "build_trainer",
    "has_generation_markers",
    "load_splits",
    "load_train_config",
    "merge_adapter",
    "parse_set",
    "resolve_model_dir",
    "train_lora",
    "training_chat_template",
    "with_preset",
]
