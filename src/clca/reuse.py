"""Reusing another run's shared stages: scenarios, dialogues, judgements and intentions.

`reuse_from: RUN_DIR` in a run config copies the records of the shared stages (scenarios, roleplay,
judge, intents) from a finished run into the new run's database before anything runs, so those stages
find their work done and make zero model calls; the new run differs only in what comes after (dataset
variant, student, training, evaluation). The shared stages' settings must be equal in both runs: the
first difference is refused with a one-line error. When the student and the eval settings are equal too,
the base student's survey answers are copied as well (its evaluation is then free). A study
(`clca.study`) is a set of runs that reuse its first run this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import parse_model
from .errors import ConfigError
from .records import (
    CONFIG,
    CULTURE_META_PREFIX,
    METRIC,
    REUSED_FROM,
    ROLEPLAY_CONFIG,
    SURVEY_ANSWER,
    key_prefix,
    stage_meta,
)
from .run_config import RunConfig
from .store import DB_NAME, RunStore

SHARED_STAGES = ("scenarios", "roleplay", "judge", "reflect", "intents")
#: records made after the shared stages (not copied; the base student's answers may be, see `reuse_shared`)
LATER_KINDS = (SURVEY_ANSWER, METRIC)
#: settings that change how work is scheduled, not what is made
_VOLATILE = {"progress", "concurrency"}
#: meta entries the shared stages write (and check on a re-run)
_SHARED_META_PREFIXES = (CULTURE_META_PREFIX, ROLEPLAY_CONFIG)


def shared_settings(cfg: RunConfig) -> dict[str, Any]:
    """Everything that decides what the shared stages make, as flat `section.key` -> value."""
    sc = cfg.stage_configs()
    flat: dict[str, Any] = {
        "seed": cfg.seed,
        "cultures": list(cfg.cultures),
        "norms": None if cfg.norms is None else str(cfg.norms),
        "models.teacher": cfg.models.teacher,
        "models.partner": cfg.models.partner or cfg.models.teacher,
        "models.judge": cfg.models.judge,
        "models.annotator": cfg.models.annotator,
    }
    for stage in SHARED_STAGES:
        data = sc[stage].model_dump(mode="json")
        if stage in ("intents", "reflect") and data.get("episodes") == "all":
            data.pop("rule", None)  # every episode is used: the discard rule changes nothing made here
        for k, v in sorted(data.items()):
            if k not in _VOLATILE:
                flat[f"{stage}.{k}"] = v
    return flat


def _eval_settings(cfg: RunConfig) -> dict[str, Any]:
    ev = cfg.stage_configs()["eval"].model_dump(mode="json")
    return {"models.student": cfg.models.student, **{f"eval.{k}": v for k, v in ev.items() if k not in _VOLATILE}}


def first_difference(here: dict[str, Any], there: dict[str, Any]) -> str | None:
    for k in [*here, *(k for k in there if k not in here)]:  # in the order of the settings (models first)
        if here.get(k) != there.get(k):
            return f"{k} differs: {here.get(k)!r} here, {there.get(k)!r} in the source run"
    return None


def _source_config(source: Path) -> tuple[RunConfig, bool]:
    if not (source / DB_NAME).is_file():
        raise ConfigError(f"reuse_from: {source} is not a run directory (no {DB_NAME}); run that config first")
    with RunStore(source) as src:
        raw = src.get_meta(CONFIG)
        done = [s for s in SHARED_STAGES if src.get_meta(stage_meta(s)) is None]
        eval_done = src.get_meta(stage_meta("eval")) is not None
    if raw is None:
        raise ConfigError(f"reuse_from: {source} holds no run config (not made by `clca run`)")
    if done:
        raise ConfigError(
            f"reuse_from: {source} has not finished its shared stages ({', '.join(done)}); "
            "finish that run first (clca run CONFIG --until intents)"
        )
    return parse_model(RunConfig, stored_sections(raw), f"reuse_from: {source}: its config"), eval_done


#: keys a stored (fully dumped) run config carries in its sections that the config file sets at the top level
_DERIVED = {"train": ("model",), "eval": ("cultures", "compare")}


def stored_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """A run's stored config as a config file would say it: the values its sections inherit from the top
    level (the student model, the eval cultures) are left to be derived again."""
    out = dict(raw)
    for section, keys in _DERIVED.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


def check_reuse(cfg: RunConfig) -> tuple[Path, bool]:
    """Refuse a reuse whose shared settings differ (one line naming the first difference). Returns the source
    run directory and whether the base student's survey answers can be reused too."""
    source = Path(cfg.reuse_from)
    if source.resolve() == Path(cfg.run_dir).resolve():
        raise ConfigError(f"reuse_from: {source} is this run's own directory")
    src_cfg, eval_done = _source_config(source)
    diff = first_difference(shared_settings(cfg), shared_settings(src_cfg))
    if diff is not None:
        raise ConfigError(f"reuse_from {source}: the shared stages' settings differ: {diff}")
    same_eval = eval_done and _eval_settings(cfg) == _eval_settings(src_cfg)
    return source, same_eval


def reuse_shared(cfg: RunConfig, store: RunStore) -> dict[str, int]:
    """Copy the shared stages' records (and, where the student and eval settings match, the base student's
    answers) from cfg.reuse_from into `store`. Records already there are kept. Returns copies per kind."""
    source, same_eval = check_reuse(cfg)
    include = ((SURVEY_ANSWER, key_prefix("base")),) if same_eval else ()
    copied = store.import_from(
        source / DB_NAME, exclude_kinds=LATER_KINDS, include=include, meta_prefixes=_SHARED_META_PREFIXES
    )
    store.set_meta(REUSED_FROM, {"run_dir": str(source), "copied": copied, "base_answers": same_eval})
    return copied


#: train settings that may differ between a run and the run it continues from (how long, how often saved)
_CONTINUE_FREE = {"max_steps", "save_steps", "save_total_limit", "progress", "logging_steps", "eval_steps"}


def continue_checkpoint(cfg: Any) -> str:
    """The checkpoint a run with `continue_from` starts from: the source run's checkpoint at its last step.
    Refused in one line when the source is not finished, has no checkpoint at that step, trained as many
    steps or more, or built its data or trained otherwise (the first difference is named). Exact for a
    constant learning rate: a linear schedule's decay depends on max_steps."""
    import json

    from .train import CHECKPOINTS

    source = Path(cfg.continue_from)
    if not (source / DB_NAME).is_file():
        raise ConfigError(f"continue_from: {source} is not a run directory (no {DB_NAME}); run that config first")
    with RunStore(source) as src:
        raw = src.get_meta(CONFIG)
    done = source / "adapter" / "train_result.json"
    if not isinstance(raw, dict) or not done.is_file():
        raise ConfigError(f"continue_from: {source} has not finished training (no adapter/train_result.json)")
    step = int(json.loads(done.read_text()).get("global_step") or 0)
    want = cfg.train.max_steps
    if want <= step:
        raise ConfigError(f"continue_from: train.max_steps {want} must exceed the {step} steps {source} trained")

    def settings(c: dict[str, Any]) -> dict[str, Any]:
        flat = {"seed": c.get("seed"), "models.student": (c.get("models") or {}).get("student")}
        for section in ("dataset", "train", "eval"):
            for k, v in sorted((c.get(section) or {}).items()):
                if k not in _VOLATILE and not (section == "train" and k in _CONTINUE_FREE):
                    flat[f"{section}.{k}"] = v
        return flat

    diff = first_difference(settings(cfg.model_dump(mode="json")), settings(raw))
    if diff is not None:
        raise ConfigError(f"continue_from {source}: the data or training settings differ: {diff}")
    ckpt = source / "adapter" / CHECKPOINTS / f"checkpoint-{step}"
    if not (ckpt / "trainer_state.json").is_file():
        raise ConfigError(
            f"continue_from: {source} kept no checkpoint at its last step {step} (set train.save_steps to a "
            "divisor of its max_steps)"
        )
    return str(ckpt)
