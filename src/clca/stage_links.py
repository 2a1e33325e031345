"""Settings that link the stages of one run, checked and aligned once when the config is validated.

- One discard rule. The judge stage's "kept" count, the intents stage (`intents.episodes: kept`) and the
  dataset (`dataset.judge_rule`) all use the same `clca.judge.DiscardRule`: `dataset.judge_rule` when it
  is set, else `intents.rule`, else the default rule. Setting both to different rules is refused.
- Reflections for the collaborative task. A dataset variant with the `collaborative` task (`full_collab`,
  `collab_only`) needs the reflect stage: without `reflect.enabled` it is refused. The reflect stage
  selects episodes (`reflect.episodes: kept`) by the same discard rule.
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


def _rule_dict(rule: Any) -> dict[str, Any]:
    from .judge import DiscardRule

    return DiscardRule.model_validate(rule if not isinstance(rule, BaseModel) else rule.model_dump()).model_dump(
        mode="json"
    )


def run_rule(intents: BaseModel, dataset: BaseModel) -> dict[str, Any] | None:
    """The run's discard rule as DiscardRule fields (None = the default rule): what the config set explicitly
    under `dataset.judge_rule` or `intents.rule` (the same rule when both are set)."""
    d_rule = getattr(dataset, "judge_rule", None) if "judge_rule" in dataset.model_fields_set else None
    i_rule = getattr(intents, "rule", None) if "rule" in intents.model_fields_set else None
    if d_rule is not None and i_rule is not None:
        a, b = _rule_dict(d_rule), _rule_dict(i_rule)
        if a != b:
            diff = next(k for k in a if a[k] != b[k])
            raise ConfigError(
                f"dataset.judge_rule and intents.rule differ ({diff}: {a[diff]} vs {b[diff]}); "
                "one run uses one discard rule: set dataset.judge_rule only"
            )
    rule = d_rule if d_rule is not None else i_rule
    return None if rule is None else _rule_dict(rule)


def link_sections(sections: dict[str, BaseModel]) -> dict[str, BaseModel]:
    """Align the validated stage sections of a run config: one discard rule for judge, intents and dataset;
    intentions of every dialogue for the unfiltered variants."""
    from .judge import DiscardRule

    intents, dataset = sections["intents"], sections["dataset"]
    rule = run_rule(intents, dataset)
    variant = dataset.variant  # type: ignore[attr-defined]
    episodes = intents.episodes  # type: ignore[attr-defined]
    if variant in UNFILTERED_VARIANTS and "intent" in dataset.tasks():  # type: ignore[attr-defined]
        if "episodes" in intents.model_fields_set and episodes == "kept":
            raise ConfigError(
                f"intents.episodes: 'kept' annotates only judge-kept dialogues, but dataset.variant {variant!r} "
                "trains on intentions of every finished dialogue; set intents.episodes: all"
            )
        episodes = "all"
    out = dict(sections)
    reflect = sections.get("reflect")
    if reflect is not None:
        if "collaborative" in dataset.tasks() and not reflect.enabled:  # type: ignore[attr-defined]
            raise ConfigError(
                f"dataset.variant {variant!r} trains on the characters' reflections: set reflect.enabled: true"
            )
        out["reflect"] = reflect.model_copy(update={"rule": DiscardRule.model_validate(rule or {})})
    out["intents"] = intents.model_copy(update={"episodes": episodes, "rule": DiscardRule.model_validate(rule or {})})
    out["dataset"] = dataset.model_copy(update={"judge_rule": rule})
    return out


def kept_rule(sections: dict[str, BaseModel]) -> Any:
    """The run's DiscardRule (after `link_sections`)."""
    return sections["intents"].rule  # type: ignore[attr-defined]
