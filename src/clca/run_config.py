"""The run config (`clca run CONFIG.yaml`): one section per stage, each typed by its stage's config class.

The stage list is declared here once, as names and config classes in pipeline order (`STAGE_CONFIGS`);
`clca.pipeline` pairs each name with the coroutine that runs it. Nothing here imports the pipeline, the
report or the study, so each of them can import the config without an import circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._bounds import seed_field
from .config import load_config
from .dataset import DatasetConfig
from .errors import ConfigError
from .intents import IntentConfig
from .judge import JudgeConfig
from .reflect import ReflectConfig
from .roleplay import RoleplayConfig
from .scenarios import AdaptConfig, NormsConfig
from .train import TrainConfig, with_preset
from .wvs import EvalConfig

#: every stage in pipeline order with the class of its config section (None: the stage has no section)
STAGE_CONFIGS: dict[str, type[BaseModel] | None] = {
    "scenarios": AdaptConfig,
    "roleplay": RoleplayConfig,
    "judge": JudgeConfig,
    "reflect": ReflectConfig,
    "intents": IntentConfig,
    "dataset": DatasetConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "report": None,
}
STAGES: tuple[str, ...] = tuple(STAGE_CONFIGS)


class ModelsConfig(BaseModel):
    """A model string per role (see `clca.llm`)."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field("embedded", description="adapts scenarios and plays the first character")
    partner: str | None = Field(None, description="plays the second character (default: the teacher)")
    judge: str = Field("embedded", description="two-step judge")
    annotator: str = Field("embedded", description="writes per-turn intentions")
    student: str = Field("embedded", description="the model that is fine-tuned and evaluated")

    @field_validator("teacher", "partner", "judge", "annotator", "student")
    @classmethod
    def _model_string(cls, v: str | None) -> str | None:
        from .errors import ClcaError
        from .llm import check_model_string  # syntax, options and the API key's presence; loads nothing

        if v is not None:
            try:
                check_model_string(v)
            except ClcaError as e:
                raise ValueError(e.one_line()) from None
        return v


class RunConfig(BaseModel):
    """`clca run CONFIG.yaml`: every section is the config of one stage, with its own defaults."""

    model_config = ConfigDict(extra="forbid")

    name: str = "clca-run"
    run_dir: Path = Field(description="where the database, dataset, adapter and report go")
    seed: int = seed_field()
    cultures: list[str] = Field(min_length=1, description="target cultures (names or ISO codes)")
    compare: list[str] = Field(default_factory=lambda: ["United States"], description="other cultures in the eval")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    scenarios: AdaptConfig = Field(default_factory=AdaptConfig, description="clca.scenarios.AdaptConfig")
    norms: Path | NormsConfig | None = Field(
        None,
        description="norms for norm-based scenarios: a file (CSV/JSONL/Sotopia-pi used_prompt.csv) or "
        "{file, culture, sources, limit, seed}; norms without a culture are used for every target culture",
    )
    roleplay: RoleplayConfig = Field(default_factory=RoleplayConfig, description="clca.roleplay.RoleplayConfig")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="clca.judge.JudgeConfig")
    reflect: ReflectConfig = Field(
        default_factory=ReflectConfig, description="clca.reflect.ReflectConfig (collaborative learning; off by default)"
    )
    intents: IntentConfig = Field(default_factory=IntentConfig, description="clca.intents.IntentConfig")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="clca.dataset.DatasetConfig")
    train: TrainConfig = Field(default_factory=TrainConfig, description="clca.train.TrainConfig")
    eval: EvalConfig = Field(
        default_factory=lambda: EvalConfig(cultures=[]), description="clca.wvs.EvalConfig (cultures come from above)"
    )
    cache: bool | Path = Field(
        True, description="response cache: true = the shared cache in CLCA_CACHE, false = off, or a SQLite path"
    )
    adapted_styles: list[str] = Field(
        default_factory=lambda: ["persona"], description="prompt styles the adapted student is evaluated with"
    )
    reuse_from: Path | None = Field(
        None, description="run directory whose scenarios, dialogues, judgements and intentions this run reuses "
        "(same settings for those stages; they then make no model calls); see clca.reuse"
    )  # fmt: skip
    continue_from: Path | None = Field(
        None, description="run directory of a finished run with the same data and training settings but fewer "
        "train.max_steps: training continues from its last checkpoint (a dose-response axis); see clca.study"
    )  # fmt: skip

    @field_validator("cultures", "compare")
    @classmethod
    def _cultures(cls, v: list[str]) -> list[str]:
        from .culture import resolve_culture
        from .errors import ClcaError

        for name in v:
            try:
                resolve_culture(name)
            except ClcaError as e:  # becomes a located validation error
                raise ValueError(e.one_line()) from None
        return v

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """What each section takes from the top level unless it sets it: the seed; train: the student model
        and its preset's values (under the section's own); eval: the cultures. Sections that are not
        mappings are left to their type's validation."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        seed = data.get("seed", 0)
        for name in section_models():
            sec = data.get(name, {})
            if isinstance(sec, dict):
                data[name] = {"seed": seed, **sec}
        train, ev = data["train"], data["eval"]
        if isinstance(train, dict):
            try:
                train = with_preset(train)
            except ConfigError as e:
                raise ValueError(f"train.preset: {e}") from None
            if "model" in train:
                raise ValueError("train.model: the student model is set in models.student")
            models = data.get("models")
            student = models.get("student") if isinstance(models, dict) else None
            student = student if student is not None else ModelsConfig.model_fields["student"].default
            data["train"] = {**train, "model": student}
        if isinstance(ev, dict):
            if "cultures" in ev or "compare" in ev:
                raise ValueError("eval: cultures and compare are set at the top level of the config")
            compare = data.get("compare", cls.model_fields["compare"].get_default(call_default_factory=True))
            data["eval"] = {"cultures": _eval_cultures(data.get("cultures", [])), "compare": compare, **ev}
        return data

    @model_validator(mode="after")
    def _sizes(self) -> RunConfig:
        from .errors import ClcaError

        try:
            _check_sizes(self.scenarios)  # refused now, before any model loads
            from .preflight import check_static

            check_static(self)  # duplicate cultures, profile codes, styles, cache folder
            from .stage_links import link_sections

            linked = link_sections({"intents": self.intents, "dataset": self.dataset, "reflect": self.reflect})
            self.intents, self.dataset = linked["intents"], linked["dataset"]  # type: ignore[assignment]
            self.reflect = linked["reflect"]  # type: ignore[assignment]
        except ClcaError as e:
            raise ValueError(e.one_line()) from None
        return self

    def stage_configs(self) -> dict[str, BaseModel]:
        """Each section as its stage's validated config object."""
        return {name: getattr(self, name) for name in section_models()}


def _eval_cultures(cultures: Any) -> Any:
    """The eval stage's cultures: a profile file becomes its culture's code (bad specs are reported by the
    `cultures` validator)."""
    from .errors import ClcaError
    from .preflight import eval_culture

    if not isinstance(cultures, list):
        return cultures
    out = []
    for c in cultures:
        try:
            out.append(eval_culture(c) if isinstance(c, str) else c)
        except ClcaError:
            out.append(c)
    return out


def section_models() -> dict[str, type[BaseModel]]:
    """The config class of each stage section (the stages that have one, in pipeline order)."""
    return {name: config for name, config in STAGE_CONFIGS.items() if config is not None}


def _check_sizes(adapt: Any) -> None:
    """Sizes that cannot work are refused before anything runs."""
    from .scenarios import load_seeds

    if adapt.sotopia is not None:  # counted when the stage reads (or downloads) the Sotopia files
        return
    available = len(load_seeds(adapt.seeds_file, adapt.seeds))
    if adapt.n is not None and adapt.n > available:
        raise ConfigError(f"scenarios.n: {adapt.n} is more than the {available} available seed scenarios")


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    return load_config(RunConfig, path, overrides)
