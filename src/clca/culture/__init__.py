"""Country culture profiles (Hofstede six dimensions, Inglehart-Welzel map) and their verbalisation.

from clca.culture import get_culture
jp = get_culture("Japan")          # also "JP", "jpn", aliases such as "UK" or "Korea"
jp.describe()                      # the text that goes into prompts
"""

from ._countries import region_of
from ._model import Culture, HofstedeScores, IWPosition, RegionScores
from ._profile import ProfileFile, load_profile
from ._registry import (
    UnknownCultureError,
    culture_in_run,
    culture_sources,
    get_culture,
    get_culture_exact,
    list_cultures,
    resolve_culture,
    source_counts,
)
from ._verbalise import (
    HOFSTEDE_BALANCED_HIGH,
    HOFSTEDE_BALANCED_LOW,
    HOFSTEDE_DIMS,
    HOFSTEDE_HIGHLY_HIGH,
    HOFSTEDE_HIGHLY_LOW,
    IW_AXES,
    IW_MODERATE,
    IW_STRONG,
    hofstede_phrase,
    iw_phrase,
)

__all__ = [
    "Culture",
    "HofstedeScores",
    "IWPosition",
    "RegionScores",
    "ProfileFile",
    "UnknownCultureError",
    "culture_in_run",
    "get_culture_exact",
    "culture_sources",
    "get_culture",
    "hofstede_phrase",
    "iw_phrase",
    "list_cultures",
    "load_profile",
    "region_of",
    "resolve_culture",
    "source_counts",
    "HOFSTEDE_DIMS",
    "IW_AXES",
    "HOFSTEDE_HIGHLY_LOW",
    "HOFSTEDE_BALANCED_LOW",
    "HOFSTEDE_BALANCED_HIGH",
    "HOFSTEDE_HIGHLY_HIGH",
    "IW_MODERATE",
    "IW_STRONG",
]
