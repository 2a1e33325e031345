"""One study, shared generation: a grid of runs of which the first generates and the others reuse it.

A study config expands into runs that reuse another run's scenarios, dialogues, judgements and
intentions (`reuse_from`, see `clca.reuse`): a `base` run config, settings for all runs (`set`), and
a grid of named axes (e.g. student x dataset variant). The first run generates; every other run reuses.

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
from .reuse import SHARED_STAGES
from .run_config import RunConfig


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


def check_study(path: str | Path) -> list[StudyRun]:
    """`expand_study` plus, for every run, the checks `clca config check` makes of a run config (every file
    and local model the run reads; a reusing run only what it makes itself), so a study whose runs would
    fail is refused before any runs. Errors name the study file and the run."""
    from .preflight import check_run
    from .run_config import STAGES

    runs = expand_study(path)
    for r in runs:
        cfg = parse_model(RunConfig, r.config, f"{path}: run {r.name}")
        stages = STAGES if r.reuse_from is None else [s for s in STAGES if s not in SHARED_STAGES]
        check_run(cfg, stages, source=f"{path}: run {r.name}")
    return runs
