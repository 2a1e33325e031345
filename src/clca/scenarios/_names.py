"""Culture-plausible names: checked against, and when needed drawn from, Faker's per-locale person names.

A culture (ISO alpha-3 code) maps to the Faker locales that hold person-name data for it: every Faker
locale with a person provider and a country part maps to that country (de_AT -> AUT, ja_JP -> JPN), and
`LOCALE_OVERRIDES` adds countries Faker has no person data for under their own locale (Egypt, Jordan,
... use ar_AA, Faker's Arab-world names; Latin American countries without their own locale use es) or
puts a better locale first. Cultures with no locale at all (custom profiles, regions, countries Faker
does not cover) get no name check: `culture_locales` returns () and their names count as unchecked,
never as plausible.

Matching works on Latin-script names (what the role-play prompts and small models write):
- Latin-script locales: the name (accents folded) must be one of the locale's names;
- other scripts: names are transliterated with anyascii and compared by consonant skeleton, because
  romanisations of Arabic, Persian, Hebrew or Devanagari names differ mostly in their vowels
  ("Mohamed", "Mohammed", "Muhammad" all match محمد); Japanese and Chinese use Faker's romanised lists,
  and a Chinese given name may be one or two syllables.
A first name must be of the character's gender when the gender is male or female and the locale has
gendered lists. A name of several parts ("Anna-Lena", "Garcia Lopez") passes when every part does.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from anyascii import anyascii

_ARAB = ("ar_AA",)
#: cultures Faker has no own person-name locale for, or for which another locale fits better first
LOCALE_OVERRIDES: dict[str, tuple[str, ...]] = {
    **{c: _ARAB for c in ("EGY", "JOR", "LBN", "SYR", "IRQ", "KWT", "QAT", "ARE", "BHR", "OMN", "YEM", "LBY")},
    **{c: _ARAB for c in ("TUN", "MAR", "SDN", "MRT")},
    "SAU": ("ar_SA", "ar_AA"),
    "PSE": ("ar_PS", "ar_AA"),
    "DZA": ("ar_DZ", "fr_DZ", "ar_AA"),
    "IND": ("en_IN", "hi_IN", "gu_IN", "mr_IN", "ta_IN", "or_IN"),
    "NGA": ("en_NG", "yo_NG", "ig_NG", "ha_NG"),
    "CAN": ("en_US", "fr_CA", "fr_QC"),
    "AUS": ("en_GB", "en_NZ", "en_US"),
    "THA": ("en_TH", "th_TH"),
    "TZA": ("sw",),
    "KEN": ("en_KE", "sw"),
    "ZAF": ("zu_ZA", "en_GB"),
    "SGP": ("zh_CN", "en_GB"),
    "HKG": ("zh_CN",),
    **{c: ("es",) for c in ("PER", "VEN", "ECU", "BOL", "PRY", "URY", "GTM", "HND", "SLV", "NIC", "CRI", "PAN")},
    **{c: ("es",) for c in ("CUB", "DOM", "PRI")},
}
#: Latin-script Faker locales whose names spell names of a non-Latin-script language (drawing pool for it)
LATIN_SPELLINGS: dict[str, tuple[str, ...]] = {"ar": ("en_PK",), "fa": ("en_PK",)}
#: languages where a family name is commonly a (father's) first name, so first names count as last names too
_PATRONYMIC = ("ar", "fa")
#: languages whose given names are one or two syllables written as one word in Latin script
_SYLLABIC = ("zh",)
_MALE = {"male", "man", "m", "boy", "he", "him"}
_FEMALE = {"female", "woman", "f", "girl", "she", "her"}
_SPLIT = re.compile(r"[\s\-]+")


def _fold(s: str) -> str:
    return "".join(ch for ch in anyascii(s).lower() if "a" <= ch <= "z")


def _skeleton(s: str) -> str:
    """Consonant skeleton of a name in any script: transliterate, fold, drop vowels, collapse doubles."""
    t = _fold(s).replace("q", "k").replace("g", "j")
    out: list[str] = []
    for ch in t:
        if ch in "aeiouwy":
            continue
        if out and out[-1] == ch:
            continue
        out.append(ch)
    sk = "".join(out)
    return sk[:-1] if len(sk) > 1 and sk.endswith("h") else sk


def gender_of(gender: str) -> str | None:
    """'male' / 'female' for the usual words of a character's gender, else None (any name)."""
    g = gender.strip().casefold()
    return "male" if g in _MALE else "female" if g in _FEMALE else None


def _is_latin(names: Iterable[str]) -> bool:
    sample = [n for n in list(names)[:50] if n]
    return bool(sample) and sum(_fold(n) != "" and anyascii(n) == n for n in sample) >= 0.8 * len(sample)


@dataclass(frozen=True, eq=False)  # hashed by identity: one instance per locale (cached)
class LocaleNames:
    """One Faker locale's person names, in Latin script, ready for matching and drawing."""

    locale: str
    latin: bool
    first: dict[str, tuple[str, ...]]  # "male" / "female" / "any" -> display names
    last: tuple[str, ...]

    def _key(self, name: str) -> str:
        return _fold(name) if self.latin else _skeleton(name)

    @property
    def syllabic(self) -> bool:
        return self.locale.split("_")[0] in _SYLLABIC

    def _keys(self, names: Iterable[str]) -> frozenset[str]:
        return frozenset(k for k in (self._key(n) for n in names) if k)

    def has_first(self, name: str, gender: str | None) -> bool:
        pool = self.first.get(gender or "any") or self.first["any"]
        keys = _KEYS(self, pool)
        return all(self._part_ok(p, keys) for p in _SPLIT.split(name.strip()) if p)

    def has_last(self, name: str) -> bool:
        pool = self.last
        if self.locale.split("_")[0] in _PATRONYMIC:
            pool = (*pool, *self.first.get("male", self.first["any"]))
        keys = _KEYS(self, pool)
        parts = [p for p in _SPLIT.split(name.strip()) if p]
        if not self.latin and parts and _fold(parts[0]) in ("al", "el", "abu", "bin", "ibn", "ben"):
            parts = parts[1:] or parts  # "Al-Masri", "El Sayed": the particle is part of the family name
        return bool(parts) and all(self._part_ok(p, keys) for p in parts)

    def _part_ok(self, part: str, keys: frozenset[str]) -> bool:
        k = self._key(part)
        if not k:
            return False
        if k in keys or (not self.latin and k.startswith("l") and k[1:] in keys):
            return True
        if self.syllabic:  # "Xiaoming" = "Xiao" + "Ming"
            return any(k[:i] in keys and k[i:] in keys for i in range(1, len(k)))
        return False


@cache
def _KEYS(ln: LocaleNames, pool: tuple[str, ...]) -> frozenset[str]:  # noqa: N802 (a cached method helper)
    keys = set(ln._keys(pool))
    if not ln.latin:
        keys |= {k[1:] for k in keys if k.startswith("l") and len(k) > 2}
    return frozenset(keys)


def _names(provider: type, *attrs: str) -> tuple[str, ...]:
    for a in attrs:
        v = getattr(provider, a, None)
        if isinstance(v, (list, tuple, dict)) and v:
            return tuple(dict.fromkeys(str(x) for x in v))
    return ()


@cache
def person_locales() -> tuple[str, ...]:
    """Faker locales that have person-name data (not every Faker locale does: ar_EG falls back to en_US)."""
    import faker.providers.person as pp

    return tuple(sorted(m.name for m in pkgutil.iter_modules(pp.__path__)))


@cache
def locale_names(locale: str) -> LocaleNames:
    """The person names of one Faker locale (romanised lists where Faker has them)."""
    if locale not in person_locales():
        raise ValueError(f"Faker has no person names for locale {locale!r}")
    p = importlib.import_module(f"faker.providers.person.{locale}").Provider
    male = _names(p, "first_romanized_names_male", "first_names_male")
    female = _names(p, "first_romanized_names_female", "first_names_female")
    anyn = _names(p, "first_romanized_names", "first_names") or (*male, *female)
    last = _names(p, "last_romanized_names", "last_names", "last_names_male")
    latin = _is_latin((*anyn, *last))
    first = {"any": tuple(dict.fromkeys((*anyn, *male, *female)))}
    if male:
        first["male"] = male
    if female:
        first["female"] = female
    return LocaleNames(locale=locale, latin=latin, first=first, last=last)


@cache
def _derived() -> dict[str, tuple[str, ...]]:
    """Country (ISO alpha-3, from `clca.countries`) -> the Faker locales of its ISO alpha-2 region."""
    from ..countries import iso3_from_iso2

    out: dict[str, list[str]] = {}
    for loc in person_locales():
        _, _, region = loc.partition("_")
        iso3 = iso3_from_iso2(region) if len(region) == 2 else None
        if iso3 is not None:
            out.setdefault(iso3, []).append(loc)
    return {k: tuple(v) for k, v in out.items()}


def culture_locales(code: str | None) -> tuple[str, ...]:
    """Faker locales whose names are plausible for a culture (ISO alpha-3); () when there is none."""
    if not code:
        return ()
    code = code.upper()
    locs = LOCALE_OVERRIDES.get(code) or _derived().get(code, ())
    return tuple(loc for loc in locs if loc in person_locales())


def name_problem(
    first: str, last: str, gender: str, culture: str | None, culture_name: str | None = None
) -> str | None:
    """Why first + last is not a plausible name of this gender in the culture, or None (also when unchecked)."""
    locs = culture_locales(culture)
    if not locs:
        return None
    g = gender_of(gender)
    data = [locale_names(loc) for loc in locs]
    where = f"{culture_name or culture} (Faker {', '.join(locs)})"
    if not any(d.has_first(first, g) for d in data):
        kind = f"{g} first name" if g else "first name"
        return f"{first!r} is not a {kind} of {where}"
    if not any(d.has_last(last) for d in data):
        return f"{last!r} is not a family name of {where}"
    return None


def _drawable(names: Sequence[str]) -> list[str]:
    return [n for n in names if anyascii(n) == n and _fold(n)]


@cache
def _donor_pool(locale: str, which: str) -> tuple[str, ...]:
    """Latin spellings of a non-Latin locale's names: names of its LATIN_SPELLINGS locales that match it."""
    target = locale_names(locale)
    out: dict[str, None] = {}
    for loc in LATIN_SPELLINGS.get(locale.split("_")[0], ()):
        d = locale_names(loc)
        src = d.last if which == "last" else d.first.get(which, d.first["any"])
        for n in _drawable(src):
            ok = target.has_last(n) if which == "last" else target.has_first(n, None if which == "any" else which)
            if ok:
                out[n] = None
    return tuple(sorted(out))


def _pool(culture: str, which: str) -> list[str]:
    for loc in culture_locales(culture):
        d = locale_names(loc)
        src = d.last if which == "last" else d.first.get(which, d.first["any"])
        if d.latin and _drawable(src):
            return _drawable(src)
    for loc in culture_locales(culture):
        if (donors := _donor_pool(loc, which)) and len(donors) >= 10:
            return list(donors)
    loc = culture_locales(culture)[0]
    d = locale_names(loc)
    src = d.last if which == "last" else d.first.get(which, d.first["any"])
    return sorted({anyascii(n).replace("'", "").replace("`", "").title() for n in src} - {""})


def draw_name(culture: str, gender: str, rng: random.Random, avoid: Iterable[str] = ()) -> tuple[str, str] | None:
    """A (first, last) name of the culture and gender from Faker's data, avoiding the given name parts;
    None when the culture has no locale."""
    if not culture_locales(culture):
        return None
    bad = {a.casefold() for a in avoid}
    g = gender_of(gender) or "any"
    firsts = [n for n in _pool(culture, g) if n.casefold() not in bad] or _pool(culture, g)
    lasts = [n for n in _pool(culture, "last") if n.casefold() not in bad] or _pool(culture, "last")
    return rng.choice(firsts), rng.choice(lasts)
