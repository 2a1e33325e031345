"""Rows of the two training tasks (and control rows), in chat `messages` format.

A row is a plain dict: id, task, scenario, episode, culture, messages. Only `messages` is trained on;
the other fields are kept in the exports for analysis and for the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._files import iter_jsonl, read_text
from ..errors import DataError
from ..prompts import render
from ..records import DialogueView, TurnView, content_turns
from ._config import DatasetConfig

Row = dict[str, Any]

#: names of the paper's cultures (and a few more); others fall back to DatasetConfig.culture_names or the code
CULTURE_NAMES = {
    "CHN": "China",
    "DEU": "Germany",
    "GBR": "the United Kingdom",
    "MEX": "Mexico",
    "JPN": "Japan",
    "USA": "the United States",
    "EGY": "Egypt",
    "IND": "India",
    "BRA": "Brazil",
    "KOR": "South Korea",
}


def culture_name(code: str, cfg: DatasetConfig) -> str:
    return cfg.culture_names.get(code) or CULTURE_NAMES.get(code.upper()) or code


def turn_text(t: TurnView) -> str:
    return render("dataset_turn", action_type=t.action_type, argument=t.argument)


def dialogue_rows(d: DialogueView, cfg: DatasetConfig) -> tuple[list[Row], dict[str, int]]:
    """Task 1: the dialogue once from each side. Returns rows and skip reasons."""
    rows: list[Row] = []
    skipped: dict[str, int] = {}
    sc = d.scenario
    turns = content_turns(d.turns)
    cname = culture_name(sc.culture_code, cfg) if cfg.culture_context == "country" else None
    for side in (0, 1):
        me, partner = sc.characters[side], sc.characters[1 - side]
        msgs: list[dict[str, str]] = []
        for t in turns:
            role = "assistant" if t.agent == side else "user"
            text = turn_text(t)
            if msgs and msgs[-1]["role"] == role:  # same speaker twice in a row: one message
                msgs[-1]["content"] += "\n\n" + text
            else:
                msgs.append({"role": role, "content": text})
        while msgs and msgs[-1]["role"] == "user":  # nothing to learn after the side's last turn
            msgs.pop()
        if not any(m["role"] == "assistant" for m in msgs):
            skipped["dialogue side without turns"] = skipped.get("dialogue side without turns", 0) + 1
            continue
        if msgs[0]["role"] == "assistant" and cfg.assistant_first == "insert_user":
            msgs.insert(0, {"role": "user", "content": render("dataset_dialogue_opening", me=me, partner=partner)})
        system = render(
            "dataset_dialogue_system",
            me=me,
            partner=partner,
            setting=sc.setting,
            relationship=sc.relationship,
            culture_name=cname,
        )
        rows.append(
            {
                "id": f"{d.episode_key}/side{side}",
                "task": "dialogue",
                "scenario": sc.key,
                "episode": d.episode_key,
                "culture": sc.culture_code,
                "messages": [{"role": "system", "content": system}, *msgs],
            }
        )
    return rows, skipped


def intent_rows(d: DialogueView, cfg: DatasetConfig) -> tuple[list[Row], dict[str, int]]:
    """Task 2: one row per turn with a stored intention (setting + history up to the turn -> intention)."""
    rows: list[Row] = []
    skipped: dict[str, int] = {}
    sc = d.scenario
    cname = culture_name(sc.culture_code, cfg)
    history: list[dict[str, str]] = []
    if not any(t.intention is not None for t in d.turns):  # visible, not silent: see docs/training.md
        return rows, {"dialogue without intentions": 1}
    for t in content_turns(d.turns):
        history.append({"speaker": t.speaker or sc.characters[t.agent].name, "text": turn_text(t)})
        if t.intention is None:
            continue
        if not t.intention:
            skipped["empty intention"] = skipped.get("empty intention", 0) + 1
            continue
        cultural = t.label == "cultural" if t.label is not None else t.cultural_reason is not None
        if not cultural and not cfg.intent_include_generic:
            continue
        user = render(
            "dataset_intent_user",
            culture_name=cname,
            setting=sc.setting,
            characters=sc.characters,
            transcript=list(history),
            speaker=history[-1]["speaker"],
        )
        answer = render(
            "dataset_intent_answer", intention=t.intention, cultural_reason=t.cultural_reason if cultural else None
        )
        rows.append(
            {
                "id": t.key,
                "task": "intent",
                "scenario": sc.key,
                "episode": d.episode_key,
                "culture": sc.culture_code,
                "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            }
        )
    return rows, skipped


def load_control(path: Path) -> list[Row]:
    """Generic conversations for the control variant: JSONL, one {"messages": [...]} per line.

    Messages alternate user/assistant after an optional system message and end with an assistant
    turn. An optional "group" field keeps rows of one source together in the split.
    """
    if not path.is_file():
        raise DataError(f"{path}: control file not found")
    rows: list[Row] = []
    for n, obj in iter_jsonl(read_text(path, "control file").splitlines(), str(path)):
        where = f"{path}: line {n}"
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise DataError(f"{where}: field 'messages' must be a non-empty list")
        _check_messages(msgs, where)
        group = str(obj.get("group") or f"line-{n}")
        rows.append(
            {
                "id": f"control/{n}",
                "task": "control",
                "scenario": f"control/{group}",
                "episode": None,
                "culture": str(obj.get("culture") or ""),
                "messages": [{"role": m["role"], "content": m["content"]} for m in msgs],
            }
        )
    if not rows:
        raise DataError(f"{path}: no conversations")
    return rows


def _check_messages(msgs: list[Any], where: str) -> None:
    body = msgs[1:] if isinstance(msgs[0], dict) and msgs[0].get("role") == "system" else msgs
    for i, m in enumerate(msgs):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("content"), str)
            or m.get("role")
            not in (
                "system",
                "user",
                "assistant",
            )
        ):
            raise DataError(f"{where}: messages[{i}] needs role system/user/assistant and string content")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise DataError(f"{where}: messages must alternate user/assistant; found {m['role']!r} where {want!r}")
    if not body or body[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation must end with an assistant message")
