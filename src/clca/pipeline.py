"""The whole study, stage by stage, into one run directory.

    scenarios -> roleplay -> judge -> intents -> dataset -> train -> eval -> report

Each stage reads what the previous ones stored in the run database and skips what is already
done, so re-running a finished run makes no model calls and re-running after a crash continues
where it stopped. The config is validated (and every model string and culture checked) before
any model is loaded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config import config_hash, load_config
from .dataset import DatasetConfig
from .errors import ConfigError, DataError
from .intents import IntentConfig
from .judge import JudgeConfig
from .llm import LLM, ChatResult, GenParams, Message, load_model
from .llm._protocol import T
from .memory import StagePeak
from .roleplay import RoleplayConfig
from .scenarios import AdaptConfig
from .scenarios._norms import NormsConfig
from .store import RunStore
from .train import TrainConfig, with_preset
from .wvs import EvalConfig


# -- configuration ----------------------------------------------------------------------------------
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
    seed: int = 0
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
        "(same settings for those stages; they then make no model calls); see clca.study"
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

            linked = link_sections({"intents": self.intents, "dataset": self.dataset})
            self.intents, self.dataset = linked["intents"], linked["dataset"]  # type: ignore[assignment]
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
    return {s.name: s.config for s in STAGE_DEFS if s.config is not None}


def _check_sizes(adapt: Any) -> None:
    """Sizes that cannot work are refused before anything runs."""
    from .scenarios import load_seeds

    if adapt.sotopia is not None:  # counted when the stage reads (or downloads) the Sotopia files
        return
    available = len(load_seeds(adapt.seeds_file, adapt.seeds))
    if adapt.n is not None and adapt.n > available:
        raise ConfigError(f"scenarios.n: {adapt.n} is more than the {available} available seed scenarios")


def check_model_string(spec: str) -> None:
    """Check a model string without loading anything: syntax, options, and the API key's presence."""
    from .llm import check_model_string as check

    check(spec)


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    return load_config(RunConfig, path, overrides)


# -- model calls are counted per stage -----------------------------------------------------------------
class CountingLLM:
    """Wraps a backend and counts the requests a stage sends it (a finished stage sends none)."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def __getattr__(self, name: str) -> Any:  # capabilities of the backend (e.g. prompt_text) pass through
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        self.calls += 1
        return await self.inner.chat(messages, params)

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        self.calls += 1
        return await self.inner.structured(messages, schema, params, max_attempts)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        self.calls += 1
        return await self.inner.score_options(messages, options)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Models:
    """Loads each distinct model string once, on first use."""

    def __init__(self, cache: bool | Path = True) -> None:
        self._by_spec: dict[str, CountingLLM] = {}
        self._cache = cache
        self._released_calls = 0

    def get(self, spec: str) -> CountingLLM:
        if spec not in self._by_spec:
            self._by_spec[spec] = CountingLLM(load_model(spec, cache=self._cache))
        return self._by_spec[spec]

    def calls(self) -> int:
        return self._released_calls + sum(m.calls for m in self._by_spec.values())

    def capabilities(self) -> list[dict[str, Any]]:
        """What each `openai:` server was found to accept (structured-output form, scoring path)."""
        from .llm._capabilities import capability_records

        return [r for m in self._by_spec.values() for r in capability_records(m)]

    async def aclose(self) -> None:
        for m in self._by_spec.values():
            await m.aclose()

    async def release(self) -> None:
        """Close and drop every loaded model (their memory goes back before training); counts are kept."""
        self._released_calls = self.calls()
        await self.aclose()
        self._by_spec.clear()
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Collect garbage and hand the freed memory back to the OS (glibc keeps it otherwise, and peak RSS grows)."""
    import ctypes
    import ctypes.util

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)


# -- the stages ------------------------------------------------------------------------------------------
class StageResult(BaseModel):
    stage: str
    seconds: float
    model_calls: int
    detail: str
    peak_rss_mb: float = Field(0.0, description="process peak resident memory after this stage")
    stage_peak_mb: float = Field(0.0, description="peak resident memory during this stage (clca.memory.StagePeak)")


async def run_pipeline(
    cfg: RunConfig,
    *,
    until: str | None = None,
    on_stage: Callable[[StageResult], None] | None = None,
    retry_failed: bool = False,
) -> list[StageResult]:
    """Run every stage (up to and including `until`) into cfg.run_dir; returns per-stage results.

    Items that failed in an earlier run (after their bounded retries) are kept as failed unless
    retry_failed is set, so re-running a finished run makes no model calls.
    """
    if until is not None and until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    stages = STAGE_DEFS if until is None else STAGE_DEFS[: STAGES.index(until) + 1]
    sc = cfg.stage_configs()
    from .preflight import check_run

    # every file the stages will read, before the run directory or any model
    check_run(cfg, [s.name for s in stages], sc)
    if cfg.reuse_from is not None:  # refused before the run directory exists
        from .study import check_reuse

        check_reuse(cfg)
    run_dir = Path(cfg.run_dir)
    store = RunStore(run_dir, retry_failed=retry_failed)
    store.bind_config(cfg.model_dump(mode="json"), config_hash(cfg, exclude={"run_dir", "cache", "name"}))
    models = _Models(cfg.cache)
    results: list[StageResult] = []
    try:
        if cfg.reuse_from is not None:  # before any model loads: copy the shared stages' records
            from .study import reuse_shared

            reuse_shared(cfg, store)
        for stage in stages:
            t0, c0 = time.perf_counter(), models.calls()
            with StagePeak() as peak:
                detail = await stage.run(cfg, sc, store, models)
            res = StageResult(
                stage=stage.name,
                seconds=time.perf_counter() - t0,
                model_calls=models.calls() - c0,
                detail=detail,
                peak_rss_mb=_peak_rss_mb(),
                stage_peak_mb=peak.peak_mb,
            )
            store.set_meta(f"stage:{stage.name}", res.model_dump())
            _record_servers(store, models)
            results.append(res)
            if on_stage:
                on_stage(res)
    finally:
        await models.aclose()
        store.close()
    return results


async def _scenarios(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .culture import resolve_culture
    from .scenarios import adapt_scenarios, expand_norms, generate_from_norms, load_norms_config

    lines = []
    for spec in cfg.cultures:
        culture = resolve_culture(spec)  # the one culture object; later stages read it from the run record
        s = await adapt_scenarios(store, models.get(cfg.models.teacher), culture, sc["scenarios"])
        lines.append(s.line(f"adapted to {culture.name}"))
    if cfg.norms is not None:
        norms = expand_norms(load_norms_config(cfg.norms), cfg.cultures)
        s = await generate_from_norms(store, models.get(cfg.models.teacher), norms, sc["scenarios"])
        lines.append(s.line("from norms"))
    if store.count("scenario") == 0:
        from .failures import first_failure

        raise DataError(
            f"scenarios: no valid scenario was produced; failures: {store.failure_reasons('scenario')}; "
            f"first: {first_failure(store, 'scenario')}"
        )
    return "; ".join(lines)


async def _roleplay(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .roleplay import simulate

    teacher = models.get(cfg.models.teacher)
    partner = models.get(cfg.models.partner) if cfg.models.partner else teacher
    s = await simulate(store, [teacher, partner], sc["roleplay"])
    if store.count("episode") == 0:
        raise DataError(f"roleplay: no episode finished; failures: {store.failure_reasons('episode')}")
    from .intents import dialogue_quality, quality_line

    return s.line("episodes") + "; " + quality_line(dialogue_quality(store)["total"])


async def _judge(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .judge import judge_episodes, kept_episodes

    s = await judge_episodes(store, models.get(cfg.models.judge), sc["judge"])
    from .intents import dialogue_quality, quality_line

    rule = sc["intents"].rule  # the run's one discard rule (clca.stage_links)
    kept = kept_episodes(store, rule)
    quality = quality_line(dialogue_quality(store, rule)["total"])
    return s.line("judged") + f"; kept {len(kept)} of {store.count('episode')}; {quality}"


async def _intents(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .intents import annotate_intents

    s = await annotate_intents(store, models.get(cfg.models.annotator), sc["intents"])
    return s.line("turns annotated")


def dataset_dir(cfg: RunConfig) -> Path:
    return Path(cfg.run_dir) / "dataset"


def adapter_dir(cfg: RunConfig) -> Path:
    return Path(cfg.run_dir) / "adapter"


def adapted_model_string(cfg: RunConfig) -> str:
    """The student with the trained adapter, keeping the student's `?options` at the end."""
    from .llm import ModelSpec

    return ModelSpec.parse(cfg.models.student).with_adapter(adapter_dir(cfg)).format()


async def _dataset(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .dataset import build_dataset, load_info

    out = dataset_dir(cfg)
    if (out / "info.json").is_file():
        info = load_info(out)
        return f"dataset already built: {info.rows}"
    info = await asyncio.to_thread(build_dataset, store, sc["dataset"], out, progress=_progress(sc))
    if info.rows.get("train", 0) == 0:
        raise DataError(f"dataset: no training rows (skipped: {info.skipped}); see the judge verdicts in the report")
    return f"rows {info.rows}, by task {info.rows_by_task.get('train', {})}"


async def _train(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .train import train_lora

    out = adapter_dir(cfg)
    done = out / "train_result.json"
    if done.is_file():
        return "adapter already trained: " + done.read_text()[:200]
    await models.release()  # the generation models are not needed while training: free their memory
    res = await asyncio.to_thread(train_lora, dataset_dir(cfg), sc["train"], out, resume=True)
    _return_freed_memory()  # the trainer and its model are gone: give their memory back before the eval loads models
    payload = res.model_dump(mode="json")
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(done)
    store.set_meta("train_result", payload)

    def loss(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return f"steps {res.global_step}, train loss {loss(res.train_loss)}, eval loss {loss(res.eval_loss)}"


async def _eval(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .wvs import compare_models, evaluate

    base_cfg = sc["eval"]
    base = await evaluate(store, models.get(cfg.models.student), "base", base_cfg)
    lines = [f"base: {len(base.rows)} metric rows", *base.summary.splitlines()[1:]]  # + input notes (skipped entries)
    if (adapter_dir(cfg) / "train_result.json").is_file():
        await models.release()  # one student in memory at a time
        adapted_cfg = base_cfg.model_copy(update={"styles": cfg.adapted_styles})
        await evaluate(store, models.get(adapted_model_string(cfg)), "adapted", adapted_cfg)
        for culture in cfg.cultures:
            shifts = compare_models(store, "base", "adapted", culture, styles=cfg.adapted_styles)
            store.set_meta(f"shift:{culture}", [s.model_dump(mode="json") for s in shifts])
        lines.append("adapted: done")
    return "; ".join(lines)


async def _report(cfg: RunConfig, sc: dict[str, Any], store: RunStore, models: _Models) -> str:
    from .report import write_report

    paths = write_report(store)
    return f"report: {paths.html}"


def _record_servers(store: RunStore, models: _Models) -> None:
    """Keep the servers' capabilities in the run database (meta "model_servers", shown by the report)."""
    found = models.capabilities()
    if not found:
        return
    servers = dict(store.get_meta("model_servers") or {})
    for rec in found:
        servers[f"{rec['model']}@{','.join(rec['base_urls'])}"] = rec
    store.set_meta("model_servers", servers)


def _peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _progress(sc: dict[str, Any]) -> bool:
    return bool(getattr(sc["roleplay"], "progress", True))


# -- the stage list: declared once ---------------------------------------------------------------------------
StageRun = Callable[[RunConfig, dict[str, Any], RunStore, _Models], Awaitable[str]]


@dataclass(frozen=True)
class StageDef:
    """A pipeline stage: its name (also its config section's name and its `stage:NAME` meta record), the
    class of that section (None: no section), and the coroutine that runs it. To add a stage: a line here
    and, when it has a config, a field of the same name and class in `RunConfig`."""

    name: str
    config: type[BaseModel] | None
    run: StageRun


STAGE_DEFS: tuple[StageDef, ...] = (
    StageDef("scenarios", AdaptConfig, _scenarios),
    StageDef("roleplay", RoleplayConfig, _roleplay),
    StageDef("judge", JudgeConfig, _judge),
    StageDef("intents", IntentConfig, _intents),
    StageDef("dataset", DatasetConfig, _dataset),
    StageDef("train", TrainConfig, _train),
    StageDef("eval", EvalConfig, _eval),
    StageDef("report", None, _report),
)
STAGES: tuple[str, ...] = tuple(s.name for s in STAGE_DEFS)
