"""Two-step LLM-as-judge filtering of role-play episodes, plus optional Sotopia-EVAL scoring.

Step 1 checks cultural alignment, step 2 generation quality, a meta evaluation sees both. All
verdicts are stored (kind "judgement", key = episode key); which episodes are kept is a query
(`kept_episodes(store, rule)`), so changing the discard rule needs no new model calls.
"""

from ._judge import (
    NEUTRAL_CULTURE,
    JudgeConfig,
    context_vars,
    discard_reasons,
    judge_episodes,
    kept_episodes,
    selected_episodes,
    verdicts,
)
from ._models import (
    Confidence,
    CultureVerdict,
    DiscardRule,
    MetaVerdict,
    QualityVerdict,
    Score0To10,
    ScoreMinus5To5,
    ScoreMinus10To0,
    SotopiaEval,
)

__all__ = [
    "NEUTRAL_CULTURE",
    "Confidence",
    "CultureVerdict",
    "DiscardRule",
    "JudgeConfig",
    "MetaVerdict",
    "QualityVerdict",
    "Score0To10",
    "ScoreMinus10To0",
    "ScoreMinus5To5",
    "SotopiaEval",
    "context_vars",
    "discard_reasons",
    "judge_episodes",
    "kept_episodes",
    "selected_episodes",
    "verdicts",
]
