"""Record kinds, their key formats, and the text prompts show of a stored value.

Kinds (the `kind` column of the run database's `artifacts` table) and their keys:

  scenario       CULTURE/SOURCE_ID              "JPN/seed-007"   (CULTURE: ISO3 code, or a slug for a
                                                                  culture without one)
  episode        SCENARIO_KEY/sSAMPLE           "JPN/seed-007/s1"
  turn           EPISODE_KEY/tIDX (3 digits)    "JPN/seed-007/s1/t003"   parent: the episode key
  judgement      EPISODE_KEY                    "JPN/seed-007/s1"
  intention      TURN_KEY                       "JPN/seed-007/s1/t003"   parent: the episode key
  reflection_turn EPISODE_KEY/rIDX (3 digits)   "JPN/seed-007/s1/r002"   parent: the episode key
  reflection     EPISODE_KEY                    "JPN/seed-007/s1"        parent: the episode key
  survey_answer  ALIAS/STYLE/COUNTRY/PERSONA/ITEM[/VARIANT]
  metric         ALIAS/STYLE/COUNTRY/VARIANT/METRIC or ALIAS/STYLE/COUNTRY/specificity
                 or ALIAS/STYLE/COUNTRY/iwmap (the model's place on the cultural map: map_key)

So the first segment of a key is the culture for scenario .. intention and the model alias for
survey_answer and metric (`key_head`). Build and split keys with the functions below (`key_prefix` for
the prefix of a group of keys); nothing else builds or parses them (`tests/test_records.py` walks the
source for kind strings, hand-made keys and key splits).
"""

from __future__ import annotations

from typing import NamedTuple

SCENARIO = "scenario"
EPISODE = "episode"
TURN = "turn"
JUDGEMENT = "judgement"
INTENTION = "intention"
REFLECTION_TURN = "reflection_turn"
REFLECTION = "reflection"
SURVEY_ANSWER = "survey_answer"
METRIC = "metric"
KINDS = (SCENARIO, EPISODE, TURN, JUDGEMENT, REFLECTION_TURN, REFLECTION, INTENTION, SURVEY_ANSWER, METRIC)
#: meta entry (not an artifact): model alias -> the seed its WVS evaluation used
EVAL_SEEDS_META = "eval_seeds"

# Meta names (the run database's `meta` table) owned here:
# the environment the run computed in (clca.environment: Python, platform, CPU/GPU, package versions,
# clca commit, each model's dtype and threads)
ENVIRONMENT_META = "environment"


def scenario_key(culture_code: str, source_id: str) -> str:
    return f"{culture_code}/{source_id}"


def episode_key(scenario_key: str, sample: int) -> str:
    return f"{scenario_key}/s{sample}"


def turn_key(ep_key: str, idx: int) -> str:
    return f"{ep_key}/t{idx:03d}"


def reflection_turn_key(ep_key: str, idx: int) -> str:
    return f"{ep_key}/r{idx:03d}"


def split_episode_key(key: str) -> tuple[str, int]:
    """'JPN/seed-007/s1' -> ('JPN/seed-007', 1)."""
    scenario_key, _, s = key.rpartition("/")
    if not scenario_key or not s.startswith("s") or not s[1:].isdigit():
        raise ValueError(f"not an episode key: {key!r}")
    return scenario_key, int(s[1:])


def split_turn_key(key: str) -> tuple[str, int]:
    """'JPN/seed-007/s1/t003' -> ('JPN/seed-007/s1', 3)."""
    ep_key, _, t = key.rpartition("/")
    if not ep_key or not t.startswith("t") or not t[1:].isdigit():
        raise ValueError(f"not a turn key: {key!r}")
    return ep_key, int(t[1:])


MAP_SUFFIX = "iwmap"


def map_key(alias: str, style: str, culture: str) -> str:
    """The metric row of one (model alias, prompt style, prompted culture) on the Inglehart-Welzel map."""
    return f"{alias}/{style}/{culture}/{MAP_SUFFIX}"


def split_map_key(key: str) -> tuple[str, str, str] | None:
    """'base/persona/EGY/iwmap' -> ('base', 'persona', 'EGY'); None for any other metric key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[3] != MAP_SUFFIX:
        return None
    return parts[0], parts[1], parts[2]


def key_prefix(*parts: str) -> str:
    """The prefix every key under these leading segments starts with: ('JPN',) -> 'JPN/'."""
    return "".join(f"{p}/" for p in parts)


def answer_key(alias: str, style: str, country: str, persona: str, item: str, variant: str) -> str:
    """A survey answer: 'base/persona/EGY/p003/Q27', or '.../Q27/perm1' for a variant other than 'base'."""
    key = f"{alias}/{style}/{country}/{persona}/{item}"
    return key if variant == "base" else f"{key}/{variant}"


#: the metric of a specificity row: the similarity to every survey culture, stored once per culture
SPECIFICITY = "specificity"


def metric_key(alias: str, style: str, country: str, variant: str, metric: str) -> str:
    """A metric over one culture's answers: 'base/persona/EGY/base/kl'."""
    return f"{alias}/{style}/{country}/{variant}/{metric}"


def specificity_key(alias: str, style: str, country: str) -> str:
    """The specificity row of one culture's answers: 'base/persona/EGY/specificity'."""
    return f"{alias}/{style}/{country}/{SPECIFICITY}"


class MetricKey(NamedTuple):
    alias: str
    style: str
    country: str
    variant: str | None  # None for a specificity row
    metric: str  # SPECIFICITY for a specificity row


def split_metric_key(key: str) -> MetricKey | None:
    """A metric key's parts, or None when the key is neither form (rows of an unknown layout are skipped)."""
    parts = key.split("/")
    if len(parts) == 4 and parts[3] == SPECIFICITY:
        return MetricKey(parts[0], parts[1], parts[2], None, SPECIFICITY)
    if len(parts) == 5:
        return MetricKey(*parts)
    return None


def key_head(key: str) -> str:
    """The first segment of a key: the culture (scenario, episode, turn, judgement, intention keys) or the
    model alias (survey_answer, metric keys)."""
    return key.split("/", 1)[0]


# How a scenario's relationship (Sotopia's six types) reads wherever a prompt or a training row shows it:
# the role-play prompt and the training rows must say the same words.
RELATIONSHIP_WORDS = {
    "stranger": "strangers",
    "know_by_name": "they know each other by name",
    "acquaintance": "acquaintances",
    "friend": "friends",
    "romantic": "romantic partners",
    "family": "family members",
}


def relationship_text(value: str) -> str:
    """A stored relationship value ('know_by_name') -> the words prompts show."""
    return RELATIONSHIP_WORDS.get(value, value.replace("_", " "))


def split_answer_key(key: str) -> tuple[str, str, str, str, str] | None:
    """'base/persona/EGY/p3/Q27[/perm1]' -> ('base', 'persona', 'EGY', 'p3', 'Q27'); None for another shape."""
    parts = key.split("/")
    if len(parts) not in (5, 6):
        return None
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def metric_key_culture(key: str) -> str | None:
    """The country of a metric key ('base/persona/EGY/base/kl' -> 'EGY'); None for another shape."""
    parts = key.split("/")
    return parts[2] if len(parts) >= 4 else None
