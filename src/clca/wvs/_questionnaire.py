"""Survey items as data: the bundled WVS-7 questionnaire and user-supplied ones (one YAML/JSON file per language)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from ..errors import DataError

Kind = Literal["ordinal", "categorical"]


class Item(BaseModel):
    """One survey question with its answer codes (scale order) and labels."""

    id: str
    theme: str
    text: str
    options: dict[int, str]
    kind: Kind = "ordinal"
    paraphrase: str | None = None
    export_labels: dict[int, list[str]] = Field(default_factory=dict)
    not_answers: dict[int, list[str]] = Field(
        default_factory=dict, description="survey codes/labels that mean no answer for this item (read as missing)"
    )

    def is_not_answer(self, code: int | None = None, label: str | None = None) -> bool:
        """A survey file's code or label that this item reads as missing (e.g. WVS-7 Q254 code 5)."""
        if code is not None and code in self.not_answers:
            return True
        want = _norm(label) if label is not None else None
        return want is not None and any(_norm(x) == want for xs in self.not_answers.values() for x in xs)

    @property
    def codes(self) -> list[int]:
        """Answer codes in scale order (ascending code)."""
        return sorted(self.options)

    @property
    def scale_length(self) -> int:
        return len(self.options)

    def label_to_code(self, label: str) -> int | None:
        """Code of a label as written in a WVS labelled export (or our own label); None when unknown."""
        want = _norm(label)
        for code in self.codes:
            names = [self.options[code], *self.export_labels.get(code, [])]
            if any(_norm(n) == want for n in names):
                return code
        return None


class Questionnaire(BaseModel):
    language: str = "en"
    name: str = ""
    source: str = ""
    items: list[Item]

    def __iter__(self) -> Iterator[Item]:  # type: ignore[override]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.items]

    def get(self, item_id: str) -> Item:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    def select(self, ids: list[str] | None) -> Questionnaire:
        """The items named in ids (all when None); an unknown id is a DataError."""
        if not ids:
            return self
        known = set(self.ids)
        bad = [i for i in ids if i not in known]
        if bad:
            raise DataError(f"unknown survey item(s) {', '.join(bad)} in questionnaire {self.source or self.name}")
        return self.model_copy(update={"items": [self.get(i) for i in ids]})

    def merged(self, other: Questionnaire) -> Questionnaire:
        """Items of self, replaced/extended by those of other (same id = other wins)."""
        by_id = {i.id: i for i in self.items}
        for i in other.items:
            by_id[i.id] = i
        return self.model_copy(update={"items": list(by_id.values())})


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower().replace("’", "'").replace("'", "")).strip()


def bundled_questionnaire_path(language: str = "en") -> Path:
    return Path(str(resources.files("clca") / "data" / "wvs" / f"questionnaire.{language}.yaml"))


@lru_cache(maxsize=8)
def _bundled(language: str) -> Questionnaire:
    path = bundled_questionnaire_path(language)
    if not path.exists():
        raise DataError(f"no bundled questionnaire for language {language!r} (expected {path.name})")
    return load_questionnaire(path)


def default_questionnaire(language: str = "en") -> Questionnaire:
    """The 44 WVS-7 items (Q1-Q45 without Q42) bundled with clca."""
    return _bundled(language)


#: item sets `items` may name: the 44 bundled items; the questions behind the Inglehart-Welzel map's ten
#: variables (docs/cultural-map.md): five of them among the 44, nine in data/wvs/iw10.<language>.yaml
ITEM_SETS: dict[str, tuple[str, ...]] = {
    "iw10": ("Q8", "Q14", "Q15", "Q17", "Q45", "Q46", "Q57", "Q154", "Q155", "Q164", "Q182", "Q184", "Q209", "Q254"),
}
ALL_44 = "wvs44"


@lru_cache(maxsize=8)
def iw10_extra(language: str = "en") -> Questionnaire:
    """The nine map questions that are not among the 44 bundled items."""
    path = Path(str(resources.files("clca") / "data" / "wvs" / f"iw10.{language}.yaml"))
    if not path.exists():
        raise DataError(f"no bundled map items for language {language!r} (expected {path.name})")
    return load_questionnaire(path)


def bundled_with_sets(ids: list[str] | None, language: str = "en") -> tuple[Questionnaire, list[str] | None]:
    """The bundled questionnaire for an `items` list that may name item sets ('wvs44', 'iw10'): the 44 items,
    extended by the map questions when any of theirs is asked for, and the ids with the sets expanded."""
    q = default_questionnaire(language)
    if not ids:
        return q, None
    extra = iw10_extra(language)
    out: list[str] = []
    for i in ids:
        names = q.ids if i == ALL_44 else list(ITEM_SETS.get(i, (i,)))
        out += [n for n in names if n not in out]
    if any(n in extra.ids for n in out):
        q = q.merged(extra)
    return q, out


def load_questionnaire(path: str | Path) -> Questionnaire:
    """Read and strictly validate a questionnaire file (YAML or JSON). Errors name the file and the item."""
    from .._files import load_json, read_text
    from ..config import strict_yaml

    p = Path(path)
    text = read_text(p, "questionnaire")
    try:
        raw = load_json(text, str(p)) if p.suffix == ".json" else strict_yaml(text, str(p))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {str(e).splitlines()[0]}") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("items"), list) or not raw["items"]:
        raise DataError(f"{p}: a questionnaire needs a non-empty `items` list")
    scales = raw.get("scales") or {}
    if not isinstance(scales, dict):
        raise DataError(f"{p}: `scales` must be a mapping of scale name -> {{kind, options}}")
    items: list[Item] = []
    seen: set[str] = set()
    for n, entry in enumerate(raw["items"], start=1):
        item = _parse_item(p, n, entry, scales)
        if item.id in seen:
            raise DataError(f"{p}: item {item.id}: duplicate id")
        seen.add(item.id)
        items.append(item)
    return Questionnaire(
        language=str(raw.get("language", "en")), name=str(raw.get("name", p.stem)), source=str(p), items=items
    )


def _parse_item(p: Path, n: int, entry: Any, scales: dict[str, Any]) -> Item:
    if not isinstance(entry, dict):
        raise DataError(f"{p}: item #{n}: expected a mapping with id, theme, text and options")
    iid = str(entry.get("id") or "").strip()
    where = f"{p}: item {iid or '#' + str(n)}"
    if not iid:
        raise DataError(f"{where}: missing `id`")
    for f in ("theme", "text"):
        if not isinstance(entry.get(f), str) or not entry[f].strip():
            raise DataError(f"{where}: missing or empty `{f}`")
    scale: dict[str, Any] = {}
    if "scale" in entry:
        name = entry["scale"]
        if name not in scales or not isinstance(scales[name], dict):
            raise DataError(f"{where}: unknown scale {name!r}")
        scale = scales[name]
    options = entry.get("options", scale.get("options"))
    if not isinstance(options, dict) or not options:
        raise DataError(f"{where}: no options (give `options: {{code: label}}` or `scale: NAME`)")
    opts: dict[int, str] = {}
    for code, label in options.items():
        try:
            c = int(code)
        except (TypeError, ValueError):
            raise DataError(f"{where}: option code {code!r} is not an integer") from None
        if c < 0:
            raise DataError(f"{where}: option code {c} is negative (negative codes mean 'missing' in WVS)")
        if not isinstance(label, str):
            raise DataError(f"{where}: option {c}: label {label!r} is not text (quote it in YAML)")
        if not label.strip():
            raise DataError(f"{where}: option {c} has an empty label")
        opts[c] = label.strip()
    if len(opts) < 2:
        raise DataError(f"{where}: needs at least two options")
    kind = entry.get("kind", scale.get("kind", "ordinal"))
    if kind not in ("ordinal", "categorical"):
        raise DataError(f"{where}: kind must be 'ordinal' or 'categorical', not {kind!r}")
    export = entry.get("export_labels", scale.get("export_labels")) or {}
    exp: dict[int, list[str]] = {}
    for code, labels in export.items():
        if int(code) not in opts:
            raise DataError(f"{where}: export label for unknown code {code}")
        exp[int(code)] = [labels] if isinstance(labels, str) else [str(x) for x in labels]
    nots: dict[int, list[str]] = {}
    for code, labels in (entry.get("not_answers") or {}).items():
        if int(code) in opts:
            raise DataError(f"{where}: not_answers code {code} is also an option")
        nots[int(code)] = [labels] if isinstance(labels, str) else [str(x) for x in labels]
    para = entry.get("paraphrase")
    return Item(
        id=iid,
        theme=entry["theme"].strip(),
        text=entry["text"].strip(),
        options=opts,
        kind=kind,
        paraphrase=para.strip() if isinstance(para, str) and para.strip() else None,
        export_labels=exp,
        not_answers=nots,
    )
