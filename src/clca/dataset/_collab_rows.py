"""Task 3, collaborative learning: rows built from the stored reflections (clca.reflect) of a dialogue.

Two kinds of rows, chosen by `DatasetConfig.collab_rows`:
  statement  transcript + the characters' talk afterwards -> the norm(s) they agreed on and whether they
             agreed (one row per reflection);
  continue   the talk itself, once from each side: the student continues the reflection as that character
             (system: who it is, the scene and the transcript; its own talk turns are the assistant turns).
Only stored reflections are used; a dialogue without one is counted as skipped.
"""

from __future__ import annotations

from ..prompts import render
from ..records import DialogueView, content_turns
from ..reflect import Reflection
from ._config import DatasetConfig
from ._rows import Row, culture_name, turn_text


def collaborative_rows(
    d: DialogueView, refl: Reflection | None, cfg: DatasetConfig
) -> tuple[list[Row], dict[str, int]]:
    if refl is None:
        return [], {"dialogue without a reflection": 1}
    sc = d.scenario
    cname = culture_name(sc.culture_code, cfg) if cfg.culture_context == "country" else None
    transcript = [
        {"speaker": t.speaker or sc.characters[t.agent].name, "text": turn_text(t)} for t in content_turns(d.turns)
    ]
    talk = [{"speaker": t.speaker, "text": t.text} for t in refl.turns if t.phase == "talk"]
    base = {"scenario": sc.key, "episode": d.episode_key, "culture": sc.culture_code, "task": "collaborative"}
    rows: list[Row] = []
    if cfg.collab_rows in ("statement", "both"):
        user = render(
            "dataset_collab_user",
            culture_name=cname,
            setting=sc.setting,
            characters=sc.characters,
            transcript=transcript,
            talk=talk,
        )
        answer = render("dataset_collab_answer", norms=refl.statement.norms, agreement=refl.statement.agreement)
        rows.append(
            {
                "id": f"{d.episode_key}/statement",
                **base,
                "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            }
        )
    if cfg.collab_rows in ("continue", "both"):
        for side in (0, 1):
            me, partner = sc.characters[side], sc.characters[1 - side]
            msgs: list[dict[str, str]] = []
            for t in refl.turns:
                if t.phase != "talk":
                    continue
                role = "assistant" if t.side == side else "user"
                if msgs and msgs[-1]["role"] == role:
                    msgs[-1]["content"] += "\n\n" + t.text
                else:
                    msgs.append({"role": role, "content": t.text})
            while msgs and msgs[-1]["role"] == "user":
                msgs.pop()
            if not any(m["role"] == "assistant" for m in msgs):
                continue
            if msgs[0]["role"] == "assistant":
                msgs.insert(0, {"role": "user", "content": render("dataset_dialogue_opening", me=me, partner=partner)})
            system = render(
                "dataset_collab_system",
                me=me,
                partner=partner,
                culture_name=cname,
                setting=sc.setting,
                transcript=transcript,
            )
            rows.append(
                {
                    "id": f"{d.episode_key}/reflect{side}",
                    **base,
                    "messages": [{"role": "system", "content": system}, *msgs],
                }
            )
    return rows, {}
