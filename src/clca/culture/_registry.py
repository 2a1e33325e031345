"""Lookup of country profiles by name, ISO code or alias: the shipped figures (src/clca/data/cultures.json)
for every current country of country_converter's table, completed by Hofstede's regional rows."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ClcaError
from ._countries import countries, match_country, region_of
from ._model import Culture, HofstedeScores, RegionScores


class UnknownCultureError(ClcaError):
    """A culture name or code matches no shipped profile."""


MAX_NAME = 100  # characters; the longest shipped name or alias has 56


def check_name_length(name: str) -> None:
    """Refuse a culture name longer than MAX_NAME before any matching (the error shows its start only)."""
    if len(name) > MAX_NAME:
        raise UnknownCultureError(
            f"culture name of {len(name)} characters is too long (at most {MAX_NAME}): it starts {name[:24]!r}"
        )


def _norm(s: str) -> str:
    return " ".join(s.strip().lower().replace("_", " ").split())


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("clca").joinpath("data/cultures.json").read_text(encoding="utf-8")
    return json.loads(text)


def _with_region(c: Culture, by_id: dict[str, Culture]) -> Culture:
    """The culture with the dimensions it has no own score for taken from its Hofstede regional row."""
    region = by_id.get(region_of(c.iso3) or "")
    if region is None or region.hofstede is None:
        return c
    own = c.hofstede.present() if c.hofstede else {}
    taken = {d: v for d, v in region.hofstede.present().items() if d not in own}
    if not taken:
        return c
    label = region.aliases[0] if region.aliases else region.name
    fill = RegionScores(region=label, region_id=region.id, scores=HofstedeScores(**taken))
    return c.model_copy(update={"hofstede_region": fill})


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, Culture], list[Culture]]:
    shipped = [Culture.model_validate(c) for c in _data()["cultures"]]
    by_iso3 = {c.iso3: c for c in shipped if c.iso3}
    extra_names: dict[str, list[str]] = {}
    for k in countries():  # every current country gets a profile, with or without figures
        if k.iso3 in by_iso3:
            extra_names[k.iso3] = [k.name, k.official_name]
        else:
            aliases = [k.official_name] if k.official_name and k.official_name != k.name else []
            by_iso3[k.iso3] = Culture(id=k.iso3, name=k.name, iso2=k.iso2 or None, iso3=k.iso3, aliases=aliases)
    by_id = {c.id: c for c in shipped}
    cultures = [c for c in shipped if not c.iso3] + [_with_region(c, by_id) for c in by_iso3.values()]
    cultures.sort(key=lambda c: c.name)
    index: dict[str, Culture] = {}
    for c in cultures:
        for name in (c.id, c.name, c.iso2, c.iso3, *c.aliases):
            if name:
                index.setdefault(_norm(name), c)
    for c in cultures:  # country_converter's names of shipped countries, after the shipped names
        for name in extra_names.get(c.iso3 or "", []):
            if name:
                index.setdefault(_norm(name), c)
    return index, cultures


def list_cultures() -> list[Culture]:
    """Every culture: each current country (its own figures, its region's, or none), then the shipped
    regions and sub-national groups, sorted by name."""
    return list(_index()[1])


def source_counts() -> dict[str, int]:
    """How many countries (cultures with an ISO code) have each source of Hofstede scores."""
    counts = dict.fromkeys(("own", "own + region", "region", "own (partial)", "none"), 0)
    for c in list_cultures():
        if c.iso3:
            counts[c.hofstede_source()] += 1
    return counts


def culture_sources() -> dict[str, Any]:
    """Where the shipped figures come from (dataset, URL, citation per framework)."""
    return dict(_data()["sources"])


def get_culture(name_or_code: str) -> Culture:
    """Find a shipped culture by name, ISO alpha-2/alpha-3 or alias, case-insensitively.

    Raises UnknownCultureError naming the closest matches.
    """
    check_name_length(name_or_code)
    index = _index()[0]
    key = _norm(name_or_code)
    if key in index:
        return index[key]
    iso3 = match_country(name_or_code)  # country_converter's name patterns ("S. Korea", "Czech Rep.", ...)
    if iso3 is not None and _norm(iso3) in index:
        return index[_norm(iso3)]
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
