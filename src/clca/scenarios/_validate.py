"""Checks beyond the JSON schema, applied to every model-written scenario.

Each problem is one string "<reason>: <detail>"; the part before ':' groups failures in stats.
"""

from __future__ import annotations

import re

from ._names import name_problem
from ._schema import AdaptedDraft, Scenario, ScenarioDraft

MIN_AGE = 10
MAX_AGE = 100
#: share of a goal's content words found in the partner's public info above which the goal counts as revealed
GOAL_LEAK_SHARE = 0.7

_WORD = re.compile(r"[a-z0-9']+")
#: a plausible name: 1-3 words of letters (any script), with inner hyphens, apostrophes or periods
_NAME = re.compile(r"[^\W\d_]+(?:[-'.][^\W\d_]+)*\.?(?: [^\W\d_]+(?:[-'.][^\W\d_]+)*\.?){0,2}")
_STOP = frozenset(
    "the a an and or but to of in on at for with from by as is are be was were this that these those your you "
    "their they them his her him she he its it into about over after before while so than then there here some "
    "any each other more most very can could would should will make get have has had not no do does did".split()
)


def content_words(text: str) -> set[str]:
    """Lower-case words of 3+ letters that are not stop words."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP}


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def goal_revealed(goal: str, public_info: str) -> bool:
    """True when the goal is (nearly) spelled out in the other character's public information."""
    g, p = _norm(goal), _norm(public_info)
    if g and g in p:
        return True
    words = content_words(goal)
    if len(words) < 3:
        return False
    return len(words & content_words(public_info)) / len(words) >= GOAL_LEAK_SHARE


def check_scenario(
    draft: ScenarioDraft | AdaptedDraft | Scenario,
    seed: Scenario | None = None,
    culture: str | None = None,
    culture_name: str | None = None,
) -> list[str]:
    """Problems with a model-written scenario (empty list = valid).

    Checks: plausible names (letters only, at most three words each, first name not equal to last name);
    with a culture (ISO alpha-3), names of that culture and of the character's gender by Faker's
    per-locale name data (`name_not_of_culture`, see clca.scenarios._names);
    two distinct people (different full names and different first names); names changed from the seed
    (no first or last name reused, unless the seed is already set in that culture);
    goals non-empty and different; neither goal revealed in the other character's public info;
    ages within MIN_AGE..MAX_AGE.
    """
    problems: list[str] = []
    a, b = draft.characters
    for i, c in enumerate(draft.characters, 1):
        bad = [n for n in (c.first_name, c.last_name) if not _NAME.fullmatch(n.strip())]
        if bad:
            problems.append(f"implausible_name: character {i} has the name part {bad[0]!r}")
        elif c.first_name.casefold() == c.last_name.casefold():
            problems.append(f"implausible_name: character {i} is called {c.full_name}")
        elif (why := name_problem(c.first_name, c.last_name, c.gender, culture, culture_name)) is not None:
            problems.append(f"name_not_of_culture: character {i}: {why}")
    if a.full_name.casefold() == b.full_name.casefold():
        problems.append(f"same_names: both characters are called {a.full_name}")
    elif set(a.first_name.casefold().split()) & set(b.first_name.casefold().split()):
        problems.append(f"same_names: both characters have the first name {a.first_name}")
    if seed is not None and not (culture and seed.culture == culture):
        seed_names = {n.casefold() for c in seed.characters for n in (c.first_name, c.last_name)}
        for i, c in enumerate(draft.characters, 1):
            kept = [n for n in (c.first_name, c.last_name) if n.casefold() in seed_names]
            if kept:
                problems.append(f"names_unchanged: character {i} keeps the original name {' '.join(kept)}")
    for i, c in enumerate(draft.characters, 1):
        if not content_words(c.goal):
            problems.append(f"empty_goal: character {i} has no real goal ({c.goal!r})")
        if not MIN_AGE <= c.age <= MAX_AGE:
            problems.append(f"implausible_age: character {i} is {c.age} (allowed {MIN_AGE}-{MAX_AGE})")
    if _norm(a.goal) == _norm(b.goal):
        problems.append("same_goals: both characters have the same goal")
    for i, (c, other) in enumerate(((a, b), (b, a)), 1):
        if goal_revealed(c.goal, other.public_info):
            problems.append(f"goal_revealed: character {i}'s goal appears in the other character's public info")
    return problems
