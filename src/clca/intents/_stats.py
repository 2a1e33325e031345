"""Per-culture statistics of the dialogue data, and the JSONL export of (kept) dialogues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._files import atomic_file
from .._outputs import check_output
from ..errors import DataError
from ..judge import DiscardRule, discard_reasons
from ..records import EPISODE, JUDGEMENT, key_head
from ..roleplay import CONTENT_ACTIONS, Episode, load_episode
from ..store import RunStore
from ._annotate import episode_intentions
from ._quality import dialogue_quality

EXPORT_SCHEMA_VERSION = 1


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _episode_culture(store: RunStore, key: str, data: dict[str, Any] | None) -> str:
    return (data or {}).get("culture") or key_head(key)


def dialogue_stats(store: RunStore, rule: DiscardRule | None = None) -> dict[str, Any]:
    """Per culture (and in total): dialogues generated / failed / judged / kept, content turns per kept
    dialogue, words per content turn, and the share of cultural intentions among annotated kept turns;
    plus the measured quality of all ok dialogues (clca.intents._quality): echo_share, echo_turns,
    words_per_turn_all, distinct_2, names_share (culture-plausible character names), keep_rate.

    A content turn is a speak, non-verbal communication or action turn (leave / none carry no text).
    """
    reasons = discard_reasons(store, rule)
    judged = {r.key for r in store.iter(JUDGEMENT, status=None) if r.data and "meta" in r.data}
    per: dict[str, dict[str, Any]] = {}

    def empty() -> dict[str, Any]:
        return {"generated": 0, "failed": 0, "judged": 0, "kept": 0, "_turns": [], "_words": [], "_labels": []}

    def bucket(c: str) -> dict[str, Any]:
        return per.setdefault(c, empty())

    for r in store.iter(EPISODE, status="failed"):
        bucket(_episode_culture(store, r.key, r.data))["failed"] += 1
    for r in store.iter(EPISODE):
        b = bucket(_episode_culture(store, r.key, r.data))
        b["generated"] += 1
        b["judged"] += r.key in judged
        if reasons.get(r.key) is not None:
            continue
        b["kept"] += 1
        ep = load_episode(store, r.key)
        content = [t for t in ep.turns if t.action_type in CONTENT_ACTIONS]
        b["_turns"].append(len(content))
        b["_words"] += [t.words() for t in content]
        b["_labels"] += [i["label"] for i in episode_intentions(store, r.key).values()]

    def finish(b: dict[str, Any]) -> dict[str, Any]:
        labels = b.pop("_labels")
        return {
            **b,
            "turns_per_dialogue": _mean(b.pop("_turns")),
            "words_per_turn": _mean(b.pop("_words")),
            "intentions": len(labels),
            "cultural_share": (labels.count("cultural") / len(labels)) if labels else None,
        }

    total = empty()
    for b in per.values():
        for k, v in b.items():
            total[k] = total[k] + v
    quality = dialogue_quality(store, rule)
    qkeys = ("echo_share", "echo_turns", "distinct_2", "names_share", "keep_rate")
    cultures = {c: finish(b) for c, b in sorted(per.items())}
    for c, s in cultures.items():
        q = quality["cultures"].get(c)
        s.update({k: (q or {}).get(k) for k in qkeys} | {"words_per_turn_all": (q or {}).get("words_per_turn")})
    out_total = finish(total) | {k: quality["total"][k] for k in qkeys}
    out_total["words_per_turn_all"] = quality["total"]["words_per_turn"]
    return {"cultures": cultures, "total": out_total}


def dialogue_record(
    store: RunStore, ep: Episode, discard_reason: str | None, judgement: dict[str, Any] | None
) -> dict[str, Any]:
    """One exported dialogue (schema documented in docs/roleplay-judge-intents.md)."""
    intents = episode_intentions(store, ep.key)
    turns = []
    for t in ep.turns:
        i = intents.get(t.idx)
        turns.append(
            {
                "idx": t.idx,
                "agent": t.agent,
                "speaker": t.speaker,
                "action_type": t.action_type.value,
                "argument": t.argument,
                "intention": None if i is None else _intention(store, ep.key, t.idx, i),
            }
        )
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "episode_key": ep.key,
        "scenario_key": ep.scenario_key,
        "sample": ep.sample,
        "culture": ep.culture,
        "models": ep.models,
        "end_reason": None if ep.end_reason is None else ep.end_reason.value,
        "kept": discard_reason is None,
        "discard_reason": discard_reason,
        "scenario": ep.scenario.model_dump(mode="json"),
        "turns": turns,
        "judgement": judgement,
    }


_INTENTION_FIELDS = ("intention", "label", "cultural_reason")


def _intention(store: RunStore, episode: str, idx: int, row: Any) -> dict[str, Any]:
    """The exported fields of a stored intention; a damaged row is a one-line DataError naming it."""
    missing = [k for k in _INTENTION_FIELDS if not isinstance(row, dict) or k not in row]
    if missing:
        raise DataError(
            f"{store.path}: the intention row of {episode} turn {idx} is damaged (no {', '.join(missing)}); "
            "re-run `clca intents` after deleting that row, or restore the database"
        )
    return {k: row[k] for k in _INTENTION_FIELDS}


def export_dialogues(
    store: RunStore, out: str | Path, rule: DiscardRule | None = None, *, include_all: bool = False
) -> int:
    """Write kept (or, with include_all, all ok) dialogues as JSONL, atomically. Returns the row count."""
    out = check_output(out, kind="file", inputs=[store.run_dir])  # never over the run database
    reasons = discard_reasons(store, rule)
    keys = [k for k, why in reasons.items() if include_all or why is None]
    with atomic_file(out) as f:
        for k in keys:
            rec = store.get(JUDGEMENT, k)
            row = dialogue_record(store, load_episode(store, k), reasons[k], None if rec is None else rec.data)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(keys)
