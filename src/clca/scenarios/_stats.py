"""Reading scenarios back from the run database, and per-culture statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations

from pydantic import ValidationError

from ..culture import UnknownCultureError, get_culture
from ..errors import ConfigError, DataError
from ..records import SCENARIO, key_head, key_prefix
from ..store import RunStore
from ._io import load_seeds
from ._names import culture_locales, name_problem
from ._schema import Scenario

KIND = SCENARIO
#: token Jaccard similarity of two settings above which they count as near-duplicates
NEAR_DUPLICATE_JACCARD = 0.8
_TOKEN = re.compile(r"[a-z0-9']+")


def culture_prefix(culture: str) -> str:
    """A culture name/code -> the key prefix of its scenarios ("JPN/"); unknown names are used as given."""
    try:
        return key_prefix(get_culture(culture).code)
    except UnknownCultureError:
        return key_prefix(culture)


def iter_scenarios(store: RunStore, culture: str | None = None) -> list[tuple[str, Scenario]]:
    """(key, Scenario) for every finished scenario, optionally of one culture, in key order."""
    prefix = culture_prefix(culture) if culture else None
    out: list[tuple[str, Scenario]] = []
    for rec in store.iter(KIND, prefix=prefix):
        try:
            out.append((rec.key, Scenario.model_validate(rec.data)))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise DataError(f"{store.path}: scenario {rec.key}: field '{loc}': {err['msg']}") from None
    if culture and not out:  # a selection that leaves nothing is an error, never an empty file with exit 0
        have = sorted({key_head(rec.key) for rec in store.iter(KIND)})
        raise ConfigError(
            f"--culture {culture}: no finished scenarios of that culture in {store.run_dir}; "
            f"cultures with scenarios: {', '.join(have) or 'none'}"
        )
    return out


def jaccard(a: str, b: str) -> float:
    ta, tb = set(_TOKEN.findall(a.lower())), set(_TOKEN.findall(b.lower()))
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def near_duplicate_rate(settings: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> float:
    """Share of settings that have at least one other setting with token Jaccard > threshold."""
    if len(settings) < 2:
        return 0.0
    dup: set[int] = set()
    for i, j in combinations(range(len(settings)), 2):
        if jaccard(settings[i], settings[j]) > threshold:
            dup.update((i, j))
    return len(dup) / len(settings)


@dataclass
class CultureStats:
    culture: str
    ok: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_try: int = 0
    adapted: int = 0
    names_changed: int = 0
    near_duplicate_rate: float = 0.0
    characters_checked: int = 0  # characters of adapted / norm scenarios of a culture with Faker names
    names_plausible: int = 0  # ... whose names pass the culture's name check
    names_drawn: int = 0  # scenarios whose names were drawn from Faker after repeated name failures
    rejected: dict[str, int] = field(default_factory=dict)  # problems of rejected asks (ok scenarios)

    @property
    def names_share(self) -> float | None:
        return self.names_plausible / self.characters_checked if self.characters_checked else None

    @property
    def first_try_rate(self) -> float:
        total = self.ok + self.failed
        return self.first_try / total if total else 0.0

    @property
    def name_change_rate(self) -> float | None:
        return self.names_changed / self.adapted if self.adapted else None


def scenario_stats(store: RunStore) -> list[CultureStats]:
    """Per culture: scenarios done and failed, failure reasons, first-try validity, name-change rate
    (adapted scenarios whose names share nothing with their seed), near-duplicate rate of settings,
    culture-plausible names (Faker check), names drawn, and the problems of rejected asks."""
    seeds = {s.provenance.id: s for s in load_seeds()}
    by: dict[str, CultureStats] = {}
    settings: dict[str, list[str]] = {}
    for rec in store.iter(KIND, status=None):
        code = key_head(rec.key)
        st = by.setdefault(code, CultureStats(code))
        if rec.status != "ok":
            st.failed += 1
            reason = (rec.error or "unknown").split(":")[0].strip()
            st.reasons[reason] = st.reasons.get(reason, 0) + 1
            continue
        s = Scenario.model_validate(rec.data)
        st.ok += 1
        settings.setdefault(code, []).append(s.setting)
        if s.provenance.attempts == 1:
            st.first_try += 1
        st.names_drawn += s.provenance.names == "drawn"
        for reason, n in (s.provenance.rejected or {}).items():
            st.rejected[reason] = st.rejected.get(reason, 0) + n
        if s.provenance.kind in ("adapted", "norm") and culture_locales(s.culture):
            for c in s.characters:
                st.characters_checked += 1
                st.names_plausible += name_problem(c.first_name, c.last_name, c.gender, s.culture) is None
        seed = seeds.get(s.provenance.seed_id or "") if s.provenance.kind == "adapted" else None
        if seed is not None:
            st.adapted += 1
            old = {n.casefold() for c in seed.characters for n in (c.first_name, c.last_name)}
            new = {n.casefold() for c in s.characters for n in (c.first_name, c.last_name)}
            st.names_changed += not (old & new)
    for code, st in by.items():
        st.near_duplicate_rate = near_duplicate_rate(settings.get(code, []))
    return [by[k] for k in sorted(by)]
