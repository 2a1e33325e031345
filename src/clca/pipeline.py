"""The whole study, stage by stage, into one run directory.

    scenarios -> roleplay -> judge -> reflect -> intents -> dataset -> train -> eval -> report

Each stage reads what the previous ones stored in the run database and skips what is already
done, so re-running a finished run makes no model calls and re-running after a crash continues
where it stopped. The config is validated (and every model string and culture checked) before
any model is loaded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .config import config_hash
from .environment import record_environment
from .errors import ConfigError, DataError
from .llm import LLM, ChatResult, GenParams, Message, ModelSpec, T, load_model
from .memory import StagePeak, return_freed_memory, tune_malloc
from .records import EPISODE, MODEL_SERVERS, SCENARIO, stage_meta
from .reuse import check_reuse, reuse_shared
from .run_config import STAGE_CONFIGS, STAGES, ModelsConfig, RunConfig, load_run_config, section_models
from .store import RunStore

__all__ = [
    "STAGES",
    "STAGE_DEFS",
    "ModelsConfig",
    "RunConfig",
    "StageDef",
    "StageResult",
    "adapted_model_string",
    "load_run_config",
    "run_pipeline",
    "section_models",
]


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

    def loaded(self) -> dict[str, CountingLLM]:
        """model string -> the model loaded for it (what the run's environment record lists)."""
        return dict(self._by_spec)

    def calls(self) -> int:
        return self._released_calls + sum(m.calls for m in self._by_spec.values())

    def capabilities(self) -> list[dict[str, Any]]:
        """What each `openai:` server was found to accept (structured-output form, scoring path)."""
        from .llm import capability_records

        return [r for m in self._by_spec.values() for r in capability_records(m)]

    async def aclose(self) -> None:
        for m in self._by_spec.values():
            await m.aclose()

    async def release(self) -> None:
        """Close and drop every loaded model (their memory goes back before training); counts are kept."""
        self._released_calls = self.calls()
        await self.aclose()
        self._by_spec.clear()
        return_freed_memory()


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
    source: str | None = None,
) -> list[StageResult]:
    """Run every stage (up to and including `until`) into cfg.run_dir; returns per-stage results.

    Items that failed in an earlier run (after their bounded retries) are kept as failed unless
    retry_failed is set, so re-running a finished run makes no model calls.
    """
    if until is not None and until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    tune_malloc()  # before the stages' threads allocate (clca.memory)
    stages = STAGE_DEFS if until is None else STAGE_DEFS[: STAGES.index(until) + 1]
    from .preflight import check_run

    # every file the stages will read, before the run directory or any model
    check_run(cfg, [s.name for s in stages], source=source)  # source: the config file, named in errors
    if cfg.reuse_from is not None:  # refused before the run directory exists
        check_reuse(cfg)
    if cfg.continue_from is not None and "train" in [s.name for s in stages]:
        from .reuse import continue_checkpoint

        continue_checkpoint(cfg)
    run_dir = Path(cfg.run_dir)
    store = RunStore(run_dir, retry_failed=retry_failed)
    store.bind_config(cfg.model_dump(mode="json"), config_hash(cfg, exclude={"run_dir", "cache", "name"}))
    from ._inputs import input_hashes

    store.bind_inputs(input_hashes(cfg.model_dump(mode="json")))
    record_environment(store)
    models = _Models(cfg.cache)
    results: list[StageResult] = []
    try:
        if cfg.reuse_from is not None:  # before any model loads: copy the shared stages' records
            reuse_shared(cfg, store)
        for stage in stages:
            t0, c0 = time.perf_counter(), models.calls()
            with StagePeak() as peak:
                detail = await stage.run(cfg, store, models)
            res = StageResult(
                stage=stage.name,
                seconds=time.perf_counter() - t0,
                model_calls=models.calls() - c0,
                detail=detail,
                peak_rss_mb=_peak_rss_mb(),
                stage_peak_mb=peak.peak_mb,
            )
            store.set_meta(stage_meta(stage.name), res.model_dump())
            _record_servers(store, models)
            record_environment(store, models.loaded())
            results.append(res)
            if on_stage:
                on_stage(res)
    finally:
        await models.aclose()
        store.close()
    return results


async def _scenarios(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .culture import resolve_culture
    from .scenarios import adapt_scenarios, expand_norms, generate_from_norms, load_norms_config

    lines = []
    for spec in cfg.cultures:
        culture = resolve_culture(spec)  # the one culture object; later stages read it from the run record
        s = await adapt_scenarios(store, models.get(cfg.models.teacher), culture, cfg.scenarios)
        lines.append(s.line(f"adapted to {culture.name}"))
    if cfg.norms is not None:
        norms = expand_norms(load_norms_config(cfg.norms), cfg.cultures)
        s = await generate_from_norms(store, models.get(cfg.models.teacher), norms, cfg.scenarios)
        lines.append(s.line("from norms"))
    if store.count(SCENARIO) == 0:
        from .failures import first_failure

        raise DataError(
            f"scenarios: no valid scenario was produced; failures: {store.failure_reasons(SCENARIO)}; "
            f"first: {first_failure(store, SCENARIO)}"
        )
    return "; ".join(lines)


async def _roleplay(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .roleplay import run_roleplay

    teacher = models.get(cfg.models.teacher)
    partner = models.get(cfg.models.partner) if cfg.models.partner else teacher
    s = await run_roleplay(store, [teacher, partner], cfg.roleplay)
    if store.count(EPISODE) == 0:
        raise DataError(f"roleplay: no episode finished; failures: {store.failure_reasons(EPISODE)}")
    from .intents import dialogue_quality, quality_line

    return s.line("episodes") + "; " + quality_line(dialogue_quality(store)["total"])


async def _judge(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .judge import judge_episodes, kept_episodes

    s = await judge_episodes(store, models.get(cfg.models.judge), cfg.judge)
    from .intents import dialogue_quality, quality_line

    rule = cfg.intents.rule  # the run's one discard rule (clca.stage_links)
    kept = kept_episodes(store, rule)
    quality = quality_line(dialogue_quality(store, rule)["total"])
    return s.line("judged") + f"; kept {len(kept)} of {store.count(EPISODE)}; {quality}"


async def _reflect(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .reflect import reflect_episodes, reflection_stats

    if not cfg.reflect.enabled:
        return "off (reflect.enabled: false)"
    teacher = models.get(cfg.models.teacher)
    partner = models.get(cfg.models.partner) if cfg.models.partner else teacher
    s = await reflect_episodes(store, [teacher, partner], cfg.reflect)
    st = reflection_stats(store)
    rate = "n/a" if st["agreement_rate"] is None else f"{st['agreement_rate']:.0%}"
    return s.line("reflections") + f"; agreement {rate}"


async def _intents(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .intents import annotate_intents

    s = await annotate_intents(store, models.get(cfg.models.annotator), cfg.intents)
    return s.line("turns annotated")


def dataset_dir(cfg: RunConfig) -> Path:
    return Path(cfg.run_dir) / "dataset"


def adapter_dir(cfg: RunConfig) -> Path:
    return Path(cfg.run_dir) / "adapter"


def adapted_model_string(cfg: RunConfig) -> str:
    """The student with the trained adapter, keeping the student's `?options` at the end."""
    return ModelSpec.parse(cfg.models.student).with_adapter(adapter_dir(cfg)).format()


async def _dataset(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .dataset import build_dataset, load_info

    out = dataset_dir(cfg)
    if (out / "info.json").is_file():
        info = load_info(out)
        return f"dataset already built: {info.rows}"
    info = await asyncio.to_thread(
        build_dataset, store, cfg.dataset, out, progress=cfg.roleplay.progress, eval_cfg=cfg.eval
    )
    if info.rows.get("train", 0) == 0:
        raise DataError(f"dataset: no training rows (skipped: {info.skipped}); see the judge verdicts in the report")
    return f"rows {info.rows}, by task {info.rows_by_task.get('train', {})}"


async def _train(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .train import train_lora

    out = adapter_dir(cfg)
    done = out / "train_result.json"
    if done.is_file():
        return "adapter already trained: " + done.read_text()[:200]
    await models.release()  # the generation models are not needed while training: free their memory
    from .reuse import continue_checkpoint
    from .train import CHECKPOINTS

    own = any((out / CHECKPOINTS).glob("checkpoint-*"))  # this run's own checkpoints win (a re-run after a crash)
    resume = True if own or cfg.continue_from is None else continue_checkpoint(cfg)
    res = await asyncio.to_thread(train_lora, dataset_dir(cfg), cfg.train, out, resume=resume)
    return_freed_memory()  # the trainer and its model are gone: give their memory back before the eval loads models
    payload = res.model_dump(mode="json")
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(done)

    def loss(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return f"steps {res.global_step}, train loss {loss(res.train_loss)}, eval loss {loss(res.eval_loss)}"


async def _eval(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .wvs import evaluate

    base_cfg = cfg.eval
    base = await evaluate(store, models.get(cfg.models.student), "base", base_cfg)
    lines = [f"base: {len(base.rows)} metric rows", *base.summary.splitlines()[1:], *base.warnings]  # + input notes
    if (adapter_dir(cfg) / "train_result.json").is_file():
        await models.release()  # one student in memory at a time
        adapted_cfg = base_cfg.model_copy(update={"styles": cfg.adapted_styles})
        await evaluate(store, models.get(adapted_model_string(cfg)), "adapted", adapted_cfg)
        lines.append("adapted: done")
    return "; ".join(lines)


async def _report(cfg: RunConfig, store: RunStore, models: _Models) -> str:
    from .report import write_report

    paths = write_report(store)
    return f"report: {paths.html}"


def _record_servers(store: RunStore, models: _Models) -> None:
    """Keep the servers' capabilities in the run database (meta MODEL_SERVERS, shown by the report)."""
    found = models.capabilities()
    if not found:
        return
    servers = dict(store.get_meta(MODEL_SERVERS) or {})
    for rec in found:
        servers[ModelSpec.remote(rec["model"], rec["base_urls"]).base] = rec
    store.set_meta(MODEL_SERVERS, servers)


def _peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# -- the stage list: declared once ---------------------------------------------------------------------------
StageRun = Callable[[RunConfig, RunStore, _Models], Awaitable[str]]


@dataclass(frozen=True)
class StageDef:
    """A pipeline stage: its name (also its config section's name and its `stage:NAME` meta record), the
    class of that section (None: no section), and the coroutine that runs it. The names, their order and
    the config classes are declared in `clca.run_config.STAGE_CONFIGS`; a stage's coroutine is added here."""

    name: str
    config: type[BaseModel] | None
    run: StageRun


_RUNS: dict[str, StageRun] = {
    "scenarios": _scenarios,
    "roleplay": _roleplay,
    "judge": _judge,
    "reflect": _reflect,
    "intents": _intents,
    "dataset": _dataset,
    "train": _train,
    "eval": _eval,
    "report": _report,
}
STAGE_DEFS: tuple[StageDef, ...] = tuple(StageDef(name, config, _RUNS[name]) for name, config in STAGE_CONFIGS.items())
assert STAGES == tuple(_RUNS), "every stage of run_config.STAGE_CONFIGS runs here, in that order"
