"""One study, shared generation: runs that reuse another run's scenarios, dialogues, judgements and intentions.

`reuse_from: RUN_DIR` in a run config copies the records of the shared stages (scenarios, roleplay,
judge, intents) from a finished run into the new run's database before anything runs, so those stages
find their work done and make zero model calls; the new run differs only in what comes after (dataset
variant, student, training, evaluation). The shared stages' settings must be equal in both runs: the
first difference is refused with a one-line error. When the student and the eval settings are equal too,
the base student's survey answers are copied as well (its evaluation is then free).

A study config expands into such runs: a `base` run config, settings for all runs (`set`), and a grid of
named axes (e.g. student x dataset variant). The first run generates; every other run reuses.

    study: paper
    base: paper.yaml
    run_root: runs/paper-study
    set: {intents: {episodes: all}}
    grid:
      student: {llama-8b: {models: {student: "hf:..."}}, qwen-7b: {models: {student: "hf:..."}}}
      variant: {full: {dataset: {variant: full}}, no_filter: {dataset: {variant: no_filter}}}
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .config import _deep_merge, parse_model, read_config_tree, read_yaml
from .errors import ConfigError

SHARED_STAGES = ("scenarios", "roleplay", "judge", "intents")
#: records made after the shared stages (not copied; the base student's answers may be, see `reuse_shared`)
LATER_KINDS = ("survey_answer", "metric")
#: settings that change how work is scheduled, not what is made
_VOLATILE = {"progress", "concurrency"}
#: meta entries the shared stages write (and check on a re-run)
_SHARED_META_PREFIXES = ("culture/", "roleplay_config")


def shared_settings(cfg: Any) -> dict[str, Any]:
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
        if stage == "intents" and data.get("episodes") == "all":
            data.pop("rule", None)  # every episode is annotated: the discard rule changes nothing made here
        for k, v in sorted(data.items()):
            if k not in _VOLATILE:
                flat[f"{stage}.{k}"] = v
    return flat


def _eval_settings(cfg: Any) -> dict[str, Any]:
    ev = cfg.stage_configs()["eval"].model_dump(mode="json")
    return {"models.student": cfg.models.student, **{f"eval.{k}": v for k, v in ev.items() if k not in _VOLATILE}}


def first_difference(here: dict[str, Any], there: dict[str, Any]) -> str | None:
    for k in [*here, *(k for k in there if k not in here)]:  # in the order of the settings (models first)
        if here.get(k) != there.get(k):
            return f"{k} differs: {here.get(k)!r} here, {there.get(k)!r} in the source run"
    return None


def _source_config(source: Path) -> Any:
    from .pipeline import RunConfig
    from .store import DB_NAME, RunStore

    if not (source / DB_NAME).is_file():
        raise ConfigError(f"reuse_from: {source} is not a run directory (no {DB_NAME}); run that config first")
    with RunStore(source) as src:
        raw = src.get_meta("config")
        done = [s for s in SHARED_STAGES if src.get_meta(f"stage:{s}") is None]
        eval_done = src.get_meta("stage:eval") is not None
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


def check_reuse(cfg: Any) -> tuple[Path, bool]:
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


def reuse_shared(cfg: Any, store: Any) -> dict[str, int]:
    """Copy the shared stages' records (and, where the student and eval settings match, the base student's
    answers) from cfg.reuse_from into `store`. Records already there are kept. Returns copies per kind."""
    from .store import DB_NAME

    source, same_eval = check_reuse(cfg)
    include = (("survey_answer", "base/"),) if same_eval else ()
    copied = store.import_from(
        source / DB_NAME, exclude_kinds=LATER_KINDS, include=include, meta_prefixes=_SHARED_META_PREFIXES
    )
    store.set_meta("reused_from", {"run_dir": str(source), "copied": copied, "base_answers": same_eval})
    return copied


# -- study configs -----------------------------------------------------------------------------------------------
class StudyConfig(BaseModel):
    """A study: one base run config, settings for every run, and named axes whose product gives the runs."""

    model_config = ConfigDict(extra="forbid")

    study: str = Field(description="the study's name (a prefix of nothing; for humans and reports)")
    base: str = Field(description="run config every run starts from (relative to the study file)")
    run_root: Path = Field(description="each run goes to run_root/<axis values joined by '-'>")
    set: dict[str, Any] = Field(default_factory=dict, description="settings merged into every run")
    grid: dict[str, dict[str, dict[str, Any]]] = Field(
        min_length=1, description="axis -> value name -> settings; the runs are the product of the axes, in order"
    )
    extra: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="further named runs (settings over base + set), after the grid's runs"
    )


class StudyRun(BaseModel):
    name: str
    run_dir: Path
    reuse_from: Path | None
    config: dict[str, Any]


def is_study_config(path: str | Path) -> bool:
    return "study" in read_yaml(path)


_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def _check_run_name(p: Path, name: str) -> None:
    """A run's name becomes a folder under run_root: a plain name (letters, digits, . _ + -), never a path."""
    if not _RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"{p}: run name {name[:60]!r} is not a plain name (letters, digits, '.', '_', '+', '-'; at most 100; "
            "no '/', '..' or line breaks): it names a folder under run_root"
        )


def expand_study(path: str | Path) -> list[StudyRun]:
    """The runs of a study, generator first: the grid's product in order, then `extra`. Every later run
    reuses the first earlier run with the same student (its base evaluation is then reused too), else the
    first run: the shared stages are made once, and each student's base evaluation once."""
    from .pipeline import RunConfig

    p = Path(path)
    study = parse_model(StudyConfig, read_yaml(p), str(p))
    for axis, values in study.grid.items():
        if not values:
            raise ConfigError(f"{p}: grid.{axis}: no values")
    base = _deep_merge(read_config_tree(p.parent / study.base), study.set)
    axes = list(study.grid)
    planned: list[tuple[str, dict[str, Any]]] = []
    for combo in itertools.product(*(list(study.grid[a]) for a in axes)):
        data = base
        for axis, value in zip(axes, combo, strict=True):
            data = _deep_merge(data, study.grid[axis][value])
        planned.append(("-".join(combo), data))
    planned += [(name, _deep_merge(base, over)) for name, over in study.extra.items()]
    runs: list[StudyRun] = []
    by_student: dict[str, Path] = {}
    for name, data in planned:
        _check_run_name(p, name)
        if any(r.name == name for r in runs):
            raise ConfigError(f"{p}: two runs are named {name!r}")
        run_dir = study.run_root / name
        data = {**data, "name": f"{study.study}-{name}", "run_dir": str(run_dir)}
        cfg = parse_model(RunConfig, data, f"{p}: run {name}")  # every run is valid before any runs
        reuse = by_student.get(cfg.models.student) or (runs[0].run_dir if runs else None)
        by_student.setdefault(cfg.models.student, run_dir)
        if reuse is not None:
            data["reuse_from"] = str(reuse)
        runs.append(StudyRun(name=name, run_dir=run_dir, reuse_from=reuse, config=data))
    return runs
