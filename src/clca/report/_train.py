"""Dataset and training summaries, read from the files the dataset and train stages leave in the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

ADAPTER_RECORD = "clca_adapter.json"  # written by clca.train next to the adapter and its log_history.json
_MAX_DEPTH = 4  # how deep under the run directory to look for stage files


class DatasetSummary(BaseModel):
    path: str
    variant: str | None = None
    rows: dict[str, int] = Field(default_factory=dict, description="rows per split")
    rows_by_task: dict[str, dict[str, int]] = Field(default_factory=dict)
    episodes_read: int | None = None
    episodes_used: int | None = None
    duplicates_removed: int | None = None
    skipped: dict[str, int] = Field(default_factory=dict)
    token_stats: dict[str, Any] = Field(default_factory=dict)


class TrainSummary(BaseModel):
    path: str
    steps: int | None = None
    epochs: float | None = None
    final_loss: float | None = None
    final_eval_loss: float | None = None
    loss: list[tuple[float, float]] = Field(default_factory=list, description="(step, training loss)")
    eval_loss: list[tuple[float, float]] = Field(default_factory=list, description="(step, eval loss)")
    info: dict[str, Any] = Field(default_factory=dict, description="other scalar facts the train stage recorded")


def _find(run_dir: Path, name: str) -> list[Path]:
    out = []
    for p in sorted(run_dir.rglob(name)):
        rel = p.relative_to(run_dir)
        if len(rel.parts) <= _MAX_DEPTH and "report" not in rel.parts[:1]:
            out.append(p)
    return out


def _load(p: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def read_datasets(run_dir: Path) -> list[DatasetSummary]:
    """Every dataset the dataset stage built under the run directory (its info.json, a DatasetInfo dump)."""
    out = []
    for p in _find(run_dir, "info.json"):
        d = _load(p)
        if d is None or "rows_by_task" not in d:
            continue
        cfg = d.get("config") if isinstance(d.get("config"), dict) else {}
        out.append(
            DatasetSummary(
                path=str(p.parent.relative_to(run_dir)),
                variant=cfg.get("variant"),
                rows={str(k): int(v) for k, v in (d.get("rows") or {}).items()},
                rows_by_task={
                    str(s): {str(t): int(n) for t, n in tasks.items()}
                    for s, tasks in (d.get("rows_by_task") or {}).items()
                },
                episodes_read=d.get("episodes_read"),
                episodes_used=d.get("episodes_used"),
                duplicates_removed=d.get("duplicates_removed"),
                skipped={str(k): int(v) for k, v in (d.get("skipped") or {}).items()},
                token_stats=d.get("token_stats") or {},
            )
        )
    return out


def _history(log: list[Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    loss, ev = [], []
    for i, e in enumerate(log):
        if not isinstance(e, dict):
            continue
        step = float(e.get("step", i))
        if isinstance(e.get("loss"), (int, float)):
            loss.append((step, float(e["loss"])))
        if isinstance(e.get("eval_loss"), (int, float)):
            ev.append((step, float(e["eval_loss"])))
    return loss, ev


def read_trainings(run_dir: Path) -> list[TrainSummary]:
    """Every training log under the run directory: clca adapters (log_history.json next to clca_adapter.json,
    as `clca train` writes them), and Hugging Face trainer_state.json files outside those adapters."""
    out: list[TrainSummary] = []
    adapters: set[Path] = set()
    for p in _find(run_dir, "log_history.json"):
        try:
            log = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(log, list):
            continue
        loss, ev = _history(log)
        record = _load(p.parent / ADAPTER_RECORD) or {}
        result = record.get("result") if isinstance(record.get("result"), dict) else {}
        info = {k: v for k, v in result.items() if isinstance(v, (int, float, str)) and k != "adapter_dir"}
        if record.get("base_model"):
            info["base_model"] = record["base_model"]
        steps = result.get("global_step")
        adapters.add(p.parent)
        out.append(
            TrainSummary(
                path=str(p.parent.relative_to(run_dir)),
                steps=steps if isinstance(steps, int) else (int(loss[-1][0]) if loss else None),
                epochs=next((float(e["epoch"]) for e in reversed(log) if isinstance(e, dict) and "epoch" in e), None),
                final_loss=loss[-1][1] if loss else None,
                final_eval_loss=result.get("eval_loss")
                if isinstance(result.get("eval_loss"), float)
                else (ev[-1][1] if ev else None),
                loss=loss,
                eval_loss=ev,
                info=info,
            )
        )
    for p in _find(run_dir, "trainer_state.json"):
        d = _load(p)
        if d is None or not isinstance(d.get("log_history"), list) or any(a in p.parents for a in adapters):
            continue
        loss, ev = _history(d["log_history"])
        out.append(
            TrainSummary(
                path=str(p.parent.relative_to(run_dir)),
                steps=d.get("global_step"),
                epochs=d.get("epoch"),
                final_loss=loss[-1][1] if loss else None,
                final_eval_loss=ev[-1][1] if ev else None,
                loss=loss,
                eval_loss=ev,
            )
        )
    return out
