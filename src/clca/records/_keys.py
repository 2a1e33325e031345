"""Record kinds, their key formats, and the text prompts show of a stored value.

Kinds (the `kind` column of the run database's `artifacts` table) and their keys:

  scenario       CULTURE/SOURCE_ID              "JPN/seed-007"   (CULTURE: ISO3 code, or a slug for a
                                                                  culture without one)
  episode        SCENARIO_KEY/sSAMPLE           "JPN/seed-007/s1"
  turn           EPISODE_KEY/tIDX (3 digits)    "JPN/seed-007/s1/t003"   parent: the episode key
  judgement      EPISODE_KEY                    "JPN/seed-007/s1"
  intention      TURN_KEY                       "JPN/seed-007/s1/t003"   parent: the episode key
  survey_answer  ALIAS/STYLE/COUNTRY/PERSONA/ITEM[/VARIANT]
  metric         ALIAS/STYLE/COUNTRY/VARIANT/METRIC or ALIAS/STYLE/COUNTRY/specificity

So the first segment of a key is the culture for scenario .. intention and the model alias for
survey_answer and metric (`key_head`). Build and split keys with the functions below; nothing else
parses them.
"""

from __future__ import annotations

SCENARIO = "scenario"
EPISODE = "episode"
TURN = "turn"
JUDGEMENT = "judgement"
INTENTION = "intention"
SURVEY_ANSWER = "survey_answer"
METRIC = "metric"
KINDS = (SCENARIO, EPISODE, TURN, JUDGEMENT, INTENTION, SURVEY_ANSWER, METRIC)

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
