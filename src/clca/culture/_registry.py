"""Lookup of the shipped country profiles (src/clca/data/cultures.json) by name, ISO code or alias."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ClcaError
from ._model import Culture


class UnknownCultureError(ClcaError):
    """A culture name or code matches no shipped profile."""


def _norm(s: str) -> str:
    return " ".join(s.strip().lower().replace("_", " ").split())


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("clca").joinpath("data/cultures.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, Culture], list[Culture]]:
    cultures = [Culture.model_validate(c) for c in _data()["cultures"]]
    index: dict[str, Culture] = {}
    for c in cultures:
        for name in (c.id, c.name, c.iso2, c.iso3, *c.aliases):
            if name:
                index.setdefault(_norm(name), c)
    return index, cultures


def list_cultures() -> list[Culture]:
    """All shipped cultures, sorted by name."""
    return list(_index()[1])


def culture_sources() -> dict[str, Any]:
    """Where the shipped figures come from (dataset, URL, citation per framework)."""
    return dict(_data()["sources"])


def get_culture(name_or_code: str) -> Culture:
    """Find a shipped culture by name, ISO alpha-2/alpha-3 or alias, case-insensitively.

    Raises UnknownCultureError naming the closest matches.
    """
    index = _index()[0]
    key = _norm(name_or_code)
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.6)
    names = sorted({index[k].name for k in close})
    hint = f"; did you mean {', '.join(names)}?" if names else ""
    raise UnknownCultureError(
        f"unknown culture {name_or_code!r}{hint} (see `clca culture list`, or pass a profile file .yaml/.json)"
    )


def resolve_culture(spec: str | Path | Culture) -> Culture:
    """A Culture from a Culture, a profile file path (.yaml/.yml/.json), or a name/code."""
    if isinstance(spec, Culture):
        return spec
    s = str(spec)
    if Path(s).suffix.lower() in (".yaml", ".yml", ".json"):
        from ._profile import load_profile

        return load_profile(s)
    return get_culture(s)


def culture_in_run(store: Any, code: str) -> Culture:
    """The culture a run used under `code`: the profile recorded in the run database (custom profiles
    included, under meta name "culture/<code>"), else the shipped culture of that name or code."""
    data = store.get_meta(f"culture/{code}")
    if data is not None:
        return Culture.model_validate(data)
    return get_culture(code)
