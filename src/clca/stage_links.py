"""Settings that link the stages of one run, checked and aligned once when the config is validated.

- One discard rule. The judge stage's "kept" count, the intents stage (`intents.episodes: kept`) and the
  dataset (`dataset.judge_rule`) all use the same `clca.judge.DiscardRule`: `dataset.judge_rule` when it
  is set, else `intents.rule`, else the default rule. Setting both to different rules is refused.
- Intentions for every dialogue the dataset uses. A dataset variant that trains on unfiltered dialogues
  (`no_filter`) needs intentions of every finished dialogue: `intents.episodes` defaults to `all` there,
  and an explicit `intents.episodes: kept` is refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .errors import ConfigError

#: dataset variants that use every finished dialogue, judge-rejected ones included
UNFILTERED_VARIANTS = frozenset({"no_filter"})


def run_rule(intents: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any] | None:
    """The run's discard rule as DiscardRule fields (None = the default rule), from the raw config sections."""
    from .judge import DiscardRule

    d_rule, i_rule = dataset.get("judge_rule"), intents.get("rule")
    if d_rule is not None and i_rule is not None:
        a = DiscardRule.model_validate(d_rule).model_dump(mode="json")
        b = DiscardRule.model_validate(i_rule).model_dump(mode="json")
        if a != b:
            diff = next(k for k in a if a[k] != b[k])
            raise ConfigError(
                f"dataset.judge_rule and intents.rule differ ({diff}: {a[diff]} vs {b[diff]}); "
                "one run uses one discard rule: set dataset.judge_rule only"
            )
    rule = d_rule if d_rule is not None else i_rule
    return None if rule is None else DiscardRule.model_validate(rule).model_dump(mode="json")


def link_sections(raw: Any, sections: dict[str, BaseModel]) -> dict[str, BaseModel]:
    """Align the validated stage sections of a run config (`raw`: the RunConfig with its raw sections)."""
    from .judge import DiscardRule

    rule = run_rule(raw.intents, raw.dataset)
    variant = sections["dataset"].variant  # type: ignore[attr-defined]
    episodes = sections["intents"].episodes  # type: ignore[attr-defined]
    if variant in UNFILTERED_VARIANTS and "intent" in sections["dataset"].tasks():  # type: ignore[attr-defined]
        if raw.intents.get("episodes") == "kept":
            raise ConfigError(
                f"intents.episodes: 'kept' annotates only judge-kept dialogues, but dataset.variant {variant!r} "
                "trains on intentions of every finished dialogue; set intents.episodes: all"
            )
        episodes = "all"
    out = dict(sections)
    out["intents"] = sections["intents"].model_copy(
        update={"episodes": episodes, "rule": DiscardRule.model_validate(rule or {})}
    )
    out["dataset"] = sections["dataset"].model_copy(update={"judge_rule": rule})
    return out


def kept_rule(sections: dict[str, BaseModel]) -> Any:
    """The run's DiscardRule (after `link_sections`)."""
    return sections["intents"].rule  # type: ignore[attr-defined]
