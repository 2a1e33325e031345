"""Token-length statistics of built rows, measured with a model's tokenizer and training template."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._rows import Row


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    from ..llm import ModelSpec

    return AutoTokenizer.from_pretrained(str(ModelSpec.parse(spec).without_options().local_model_dir()))


def token_stats(splits: dict[str, list[Row]], spec: str) -> dict[str, Any]:
    """split -> task -> {rows, tokens_mean, tokens_p50, tokens_p95, tokens_max, assistant_tokens}."""
    from ..train import assistant_mask, training_chat_template  # the template training uses (public API)

    tok = load_tokenizer(spec)
    template = training_chat_template(tok)
    out: dict[str, Any] = {"tokenizer": spec}
    for split, rows in splits.items():
        by_task: dict[str, list[tuple[int, int]]] = {}
        for r in rows:
            ids, mask = assistant_mask(tok, r["messages"], template)
            by_task.setdefault(r["task"], []).append((len(ids), sum(mask)))
        by_task["all"] = [x for t in list(by_task) for x in by_task[t]]
        out[split] = {task: _summary(v) for task, v in by_task.items()}
    return out


def _summary(v: list[tuple[int, int]]) -> dict[str, float | int]:
    if not v:
        return {"rows": 0}
    lens = np.array([a for a, _ in v])
    return {
        "rows": len(v),
        "tokens_total": int(lens.sum()),
        "tokens_mean": round(float(lens.mean()), 1),
        "tokens_p50": int(np.percentile(lens, 50)),
        "tokens_p95": int(np.percentile(lens, 95)),
        "tokens_max": int(lens.max()),
        "assistant_tokens": int(sum(b for _, b in v)),
    }
