"""Writers: messages JSONL, LLaMA-Factory ShareGPT (+ dataset_info.json), Hugging Face datasets dir.

Everything is written into a temporary sibling directory that replaces the output directory in one
rename at the end, so a killed build never leaves a half-written dataset behind.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._rows import Row

SPLITS = ("train", "validation")
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}


def write_jsonl(path: Path, rows: list[Row]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def to_sharegpt(row: Row) -> dict[str, object] | None:
    """ShareGPT row (LLaMA-Factory layout) or None when the turns do not alternate human/gpt."""
    msgs = row["messages"]
    system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""
    body = msgs[1:] if system or (msgs and msgs[0]["role"] == "system") else msgs
    if not body or len(body) % 2:
        return None
    for i, m in enumerate(body):
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            return None
    return {
        "id": row["id"],
        "task": row["task"],
        "system": system,
        "conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in body],
    }


def write_sharegpt(out: Path, splits: dict[str, list[Row]], name: str) -> dict[str, int]:
    """sharegpt/{train,validation}.json + dataset_info.json; returns rows left out per split."""
    out.mkdir()
    info: dict[str, object] = {}
    left_out: dict[str, int] = {}
    for split in SPLITS:
        conv = [c for c in (to_sharegpt(r) for r in splits[split]) if c is not None]
        left_out[split] = len(splits[split]) - len(conv)
        (out / f"{split}.json").write_text(json.dumps(conv, ensure_ascii=False, indent=1), encoding="utf-8")
        info[f"{name}_{split}"] = {
            "file_name": f"{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return left_out


def write_hf(out: Path, splits: dict[str, list[Row]], progress: bool = True) -> None:
    """A datasets.DatasetDict saved with save_to_disk (columns: id, task, scenario, episode, culture, messages).

    Empty splits are left out (a split with no rows cannot be loaded back).
    """
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "scenario": Value("string"),
            "episode": Value("string"),
            "culture": Value("string"),
            "messages": [{"role": Value("string"), "content": Value("string")}],
        }
    )
    dd = DatasetDict(
        {
            split: Dataset.from_dict({k: [r.get(k) for r in splits[split]] for k in features}, features=features)
            for split in SPLITS
            if splits[split]  # an empty split cannot be read back by load_from_disk: left out
        }
    )
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    was_enabled = is_progress_bar_enabled()
    if not progress:
        disable_progress_bars()
    try:
        dd.save_to_disk(str(out))
    finally:
        if was_enabled:
            enable_progress_bars()
