"""Everything the report shows, computed from the run database: `build_summary(store) -> ReportData`.

The numbers in report.html, summary.md and the terminal table all come from one `ReportData`, so a
test can compare the report with direct store queries. Model text is carried as plain strings; the
renderers escape it.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..config import validation_message
from ..environment import flatten
from ..errors import ConfigError, DataError
from ..judge import DiscardRule, discard_reasons
from ..records import (
    CLCA_VERSION,
    CONFIG,
    CONFIG_HASH,
    ENVIRONMENT_META,
    EPISODE,
    INTENTION,
    JUDGEMENT,
    KINDS,
    METRIC,
    MODEL_SERVERS,
    REFLECTION,
    SCENARIO,
    SURVEY_ANSWER,
    TURN,
    CharacterView,
    TurnView,
    dialogue_turns,
    key_head,
    scenario_view,
    split_episode_key,
    stage_meta,
    turn_view,
)
from ..store import Record, RunStore
from ._metrics import WvsSummary, read_wvs, target_shifts
from ._train import DatasetSummary, TrainSummary, read_datasets, read_trainings

NOT_JUDGED = "not judged"  # DiscardRule's reason for an episode without all three verdicts
STAGE_KINDS = KINDS  # every kind of record, in pipeline order


class StageRun(BaseModel):
    """What `clca run` recorded for a stage (meta "stage:<name>")."""

    stage: str
    seconds: float | None = None
    model_calls: int | None = None
    detail: str = ""


class StageCount(BaseModel):
    """Rows of one artifact kind: ok, failed, and the failure reasons (grouped by text before ':')."""

    kind: str
    ok: int = 0
    failed: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    by_culture: dict[str, int] = Field(default_factory=dict, description="ok rows per culture")

    @property
    def total(self) -> int:
        return self.ok + self.failed


class CultureJudge(BaseModel):
    judged: int = 0
    kept: int = 0
    dropped: int = 0


class JudgeSummary(BaseModel):
    judged: int = 0
    kept: int = 0
    dropped: int = 0
    failed: int = 0
    not_judged: int = Field(0, description="ok dialogues without all verdicts")
    drop_reasons: dict[str, int] = Field(default_factory=dict)
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    labels: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="per verdict (alignment, quality, meta): label -> count"
    )
    by_culture: dict[str, CultureJudge] = Field(default_factory=dict)


class CultureIntentions(BaseModel):
    total: int = 0
    cultural: int = 0

    @property
    def share(self) -> float | None:
        return self.cultural / self.total if self.total else None


class IntentionSummary(BaseModel):
    total: int = 0
    cultural: int = 0
    generic: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    by_culture: dict[str, CultureIntentions] = Field(default_factory=dict)

    @property
    def cultural_share(self) -> float | None:
        return self.cultural / self.total if self.total else None


class EpisodeSummary(BaseModel):
    end_reasons: dict[str, int] = Field(default_factory=dict)
    mean_turns: float | None = None
    mean_words_per_turn: float | None = None
    turns: int = 0


class Verdict(BaseModel):
    name: str
    label: str
    confidence: str
    text: str


class ReflectionSummary(BaseModel):
    """The reflect stage (collaborative learning): counts, agreement and the most frequent agreed norms."""

    reflections: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    agreement_rate: float | None = None
    by_culture: dict[str, dict[str, Any]] = Field(default_factory=dict, description="culture -> counts, top norms")


class ReflectionSample(BaseModel):
    talk: list[tuple[str, str]] = Field(default_factory=list, description="(speaker, words) of the talk")
    norms: list[str] = Field(default_factory=list)
    agreement: bool = False
    confidence: dict[str, int] = Field(default_factory=dict)


class DialogueSample(BaseModel):
    key: str
    culture: str
    title: str
    setting: str
    relationship: str
    characters: list[str]
    goals: list[str]
    end_reason: str
    kept: bool | None = Field(None, description="None: not judged (or the judge failed)")
    drop_reason: str | None = None
    judge_error: str | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    turns: list[TurnView] = Field(default_factory=list)
    reflection: ReflectionSample | None = None
    reflection_error: str | None = None


class ReportData(BaseModel):
    """The whole report as data (what `clca report` renders)."""

    run_dir: str
    clca_version: str | None = None
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    stages: dict[str, StageCount] = Field(default_factory=dict)
    stage_runs: list[StageRun] = Field(default_factory=list, description="timings `clca run` recorded")
    environment: dict[str, str] = Field(
        default_factory=dict, description="the recorded environment, flattened (clca.environment); empty: none"
    )
    environment_models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="model string -> backend, dtype, threads"
    )
    model_servers: list[dict[str, Any]] = Field(
        default_factory=list, description="what each openai: server accepted (structured form, scoring path)"
    )
    cultures: list[str] = Field(default_factory=list)
    episodes: EpisodeSummary = Field(default_factory=EpisodeSummary)
    judge: JudgeSummary = Field(default_factory=JudgeSummary)
    quality: dict[str, Any] = Field(
        default_factory=dict, description="clca.intents.dialogue_quality: per culture and total figures"
    )
    intentions: IntentionSummary = Field(default_factory=IntentionSummary)
    reflections: ReflectionSummary = Field(default_factory=ReflectionSummary)
    wvs: WvsSummary = Field(default_factory=WvsSummary)
    datasets: list[DatasetSummary] = Field(default_factory=list, description="built datasets found in the run")
    trainings: list[TrainSummary] = Field(default_factory=list, description="training logs found in the run")
    samples: list[DialogueSample] = Field(default_factory=list)
    n_dialogues: int = Field(0, description="episodes with status ok (the sample is drawn from these)")


def _culture_of(rec: Record) -> str:
    d = rec.data if isinstance(rec.data, dict) else {}
    c = d.get("culture")
    if isinstance(c, str) and c:
        return c
    return key_head(rec.key)


def _stage(store: RunStore, kind: str, records: list[Record]) -> StageCount:
    by_culture: Counter[str] = Counter()
    ok = 0
    for r in records:
        if r.status == "ok":
            ok += 1
            if kind != METRIC:  # metric keys start with the model alias
                by_culture[_culture_of(r)] += 1
    return StageCount(
        kind=kind,
        ok=ok,
        failed=len(records) - ok,
        reasons=dict(sorted(store.failure_reasons(kind).items(), key=lambda kv: (-kv[1], kv[0]))),
        by_culture=dict(sorted(by_culture.items())),
    )


def _text(v: Any) -> str:
    return "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


RULE_PLACES = (("dataset", "judge_rule"), ("intents", "rule"))  # the order of clca.stage_links.run_rule


def discard_rule(config: dict[str, Any] | None) -> DiscardRule:
    """The run's discard rule: the config's dataset.judge_rule (what selects the training data), else
    intents.rule; the default DiscardRule() when none is set (as the pipeline decides it)."""
    for section, name in RULE_PLACES:
        sec = (config or {}).get(section)
        spec = sec.get(name) if isinstance(sec, dict) else None
        if isinstance(spec, dict) and spec:
            try:
                return DiscardRule.model_validate(spec)
            except ValidationError as e:
                raise ConfigError(validation_message(e, f"run config {section}.{name}")) from None
    return DiscardRule()


def judgement_kept(data: dict[str, Any], rule: DiscardRule | None = None) -> tuple[bool, str | None]:
    """(kept, drop reason) of a stored judgement under the judge's discard rule (clca.judge.DiscardRule)."""
    reason = (rule or DiscardRule()).discard_reason(data)
    return reason is None, reason


def _verdicts(data: dict[str, Any]) -> list[Verdict]:
    out = []
    sot = data.get("sotopia")
    if isinstance(sot, dict) and isinstance(sot.get("overall"), (int, float)):
        out.append(Verdict(name="sotopia", label=f"overall {sot['overall']:.2f}", confidence="", text=""))
    for name in ("culture", "quality", "meta"):
        v = data.get(name)
        if not isinstance(v, dict):
            continue
        text = v.get("reasoning") or v.get("critique") or ""
        out.append(
            Verdict(name=name, label=_text(v.get("label")), confidence=_text(v.get("confidence")), text=_text(text))
        )
    return out


def _character_name(c: CharacterView) -> str:
    extra = ", ".join(str(v) for v in (c.age, c.occupation) if v not in (None, ""))
    return f"{c.name} ({extra})" if extra else c.name


def _judge_summary(store: RunStore, records: list[Record], rule: DiscardRule) -> JudgeSummary:
    """Kept/dropped exactly as the judge stage's `discard_reasons` query decides (what the dataset uses)."""
    js = JudgeSummary(failure_reasons=store.failure_reasons(JUDGEMENT))
    js.failed = sum(1 for r in records if r.status != "ok")
    drops: Counter[str] = Counter()
    per: dict[str, CultureJudge] = defaultdict(CultureJudge)
    for key, reason in discard_reasons(store, rule).items():
        if reason == NOT_JUDGED:
            js.not_judged += 1
            continue
        c = per[key_head(key)]
        js.judged += 1
        c.judged += 1
        if reason is None:
            js.kept += 1
            c.kept += 1
        else:
            js.dropped += 1
            c.dropped += 1
            drops[reason] += 1
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        for v in _verdicts(r.data if isinstance(r.data, dict) else {}):
            if v.name != "sotopia":
                labels[v.name][v.label or "(none)"] += 1
    js.drop_reasons = dict(drops.most_common())
    js.labels = {k: dict(v.most_common()) for k, v in labels.items()}
    js.by_culture = dict(sorted(per.items()))
    return js


def _intention_summary(records: list[Record], store: RunStore) -> IntentionSummary:
    s = IntentionSummary(failure_reasons=store.failure_reasons(INTENTION))
    per: dict[str, CultureIntentions] = defaultdict(CultureIntentions)
    for r in records:
        if r.status != "ok":
            s.failed += 1
            continue
        d = r.data if isinstance(r.data, dict) else {}
        c = per[_culture_of(r)]
        s.total += 1
        c.total += 1
        if d.get("label") == "cultural":
            s.cultural += 1
            c.cultural += 1
        else:
            s.generic += 1
    s.by_culture = dict(sorted(per.items()))
    return s


def _sample_keys(keys: list[str], n: int, seed: int) -> list[str]:
    """Up to n keys, spread over cultures (round robin), deterministic for a seed, in key order."""
    if len(keys) <= n:
        return keys
    rng = random.Random(seed)
    per: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        per[key_head(k)].append(k)
    for v in per.values():
        rng.shuffle(v)
    out: list[str] = []
    while len(out) < n:
        for c in sorted(per):
            if per[c] and len(out) < n:
                out.append(per[c].pop())
    return sorted(out)


def build_summary(
    store: RunStore,
    *,
    samples: int = 30,
    seed: int = 0,
    rule: DiscardRule | None = None,
    base_model: str | None = None,
) -> ReportData:
    """Read the run database once and compute everything the report shows.

    `rule` decides which judged dialogues count as kept (default: the run config's dataset.judge_rule,
    else intents.rule, else `DiscardRule()`); `samples` dialogues are drawn for the browsable sample (seeded);
    `base_model` is the WVS model alias of the unadapted model (default: the config's
    report.base_model / wvs.base_model, else the alias "base"); every other alias counts as adapted.
    """
    rows: dict[str, list[Record]] = {k: list(store.iter(k, status=None)) for k in STAGE_KINDS}
    report = ReportData(
        run_dir=str(store.run_dir),
        clca_version=store.get_meta(CLCA_VERSION),
        config=store.get_meta(CONFIG),
        config_hash=store.get_meta(CONFIG_HASH),
    )
    report.stages = {k: _stage(store, k, rows[k]) for k in STAGE_KINDS}
    from ..run_config import STAGES  # the one stage list

    for name in STAGES:
        m = store.get_meta(stage_meta(name))
        if isinstance(m, dict):
            report.stage_runs.append(
                StageRun(
                    stage=name,
                    seconds=m.get("seconds"),
                    model_calls=m.get("model_calls"),
                    detail=_text(m.get("detail")),
                )
            )
    env = store.get_meta(ENVIRONMENT_META)
    if isinstance(env, dict):
        report.environment = flatten(env, models=False)
        report.environment_models = {k: v for k, v in (env.get("models") or {}).items() if isinstance(v, dict)}
    servers = store.get_meta(MODEL_SERVERS)
    if isinstance(servers, dict):
        report.model_servers = [v for _, v in sorted(servers.items()) if isinstance(v, dict)]
    cultures = {c for st in report.stages.values() for c in st.by_culture if st.kind in (SCENARIO, EPISODE)}

    ok_eps = [r for r in rows[EPISODE] if r.status == "ok"]
    ends = Counter(_text((r.data or {}).get("end_reason")) or "unknown" for r in ok_eps)
    n_turns = [int(r.data["n_turns"]) for r in ok_eps if isinstance((r.data or {}).get("n_turns"), int)]
    ok_turns = [r for r in rows[TURN] if r.status == "ok"]
    words = [len(turn_view(r.key, r.data or {}).argument.split()) for r in ok_turns]
    report.episodes = EpisodeSummary(
        end_reasons=dict(ends.most_common()),
        mean_turns=sum(n_turns) / len(n_turns) if n_turns else None,
        mean_words_per_turn=sum(words) / len(words) if words else None,
        turns=len(ok_turns),
    )
    rule = rule or discard_rule(report.config)
    report.judge = _judge_summary(store, rows[JUDGEMENT], rule)
    if report.stages[EPISODE].ok:
        from ..intents import dialogue_quality

        report.quality = dialogue_quality(store, rule)
    report.intentions = _intention_summary(rows[INTENTION], store)
    report.reflections = _reflection_summary(store)
    report.wvs = read_wvs(rows[METRIC], rows[SURVEY_ANSWER], report.config, base_model)
    report.wvs.target_shifts = target_shifts(store, report.wvs, set(cultures))
    cultures |= {m.culture for m in report.wvs.scores}
    report.cultures = sorted(c for c in cultures if c)
    run_dir = Path(store.run_dir)
    report.datasets = read_datasets(run_dir)
    report.trainings = read_trainings(run_dir)

    report.n_dialogues = len(ok_eps)
    report.samples = _dialogues(rows, _sample_keys([r.key for r in ok_eps], samples, seed), rule)
    return report


def _reflection_summary(store: RunStore) -> ReflectionSummary:
    from ..reflect import reflection_stats

    try:
        st = reflection_stats(store)
    except ValueError:  # a stored reflection the model cannot read: counted, not shown
        return ReflectionSummary(failed=store.count(REFLECTION, status=None))
    return ReflectionSummary(
        reflections=st["reflections"],
        failed=st["failed"],
        failure_reasons=st["failure_reasons"],
        agreement_rate=st["agreement_rate"],
        by_culture=st["cultures"],
    )


def _reflection_sample(data: dict[str, Any]) -> ReflectionSample | None:
    from ..reflect import Reflection

    try:
        r = Reflection.model_validate(data)
    except ValueError:
        return None
    return ReflectionSample(
        talk=[(t.speaker, t.text) for t in r.turns if t.phase == "talk"],
        norms=r.statement.norms,
        agreement=r.statement.agreement,
        confidence=r.statement.confidence,
    )


def _dialogues(rows: dict[str, list[Record]], keys: list[str], rule: DiscardRule) -> list[DialogueSample]:
    scenarios = {r.key: r for r in rows[SCENARIO]}
    episodes = {r.key: r for r in rows[EPISODE]}
    judgements = {r.key: r for r in rows[JUDGEMENT]}
    intentions = {r.key: r for r in rows[INTENTION]}
    reflections = {r.key: r for r in rows.get(REFLECTION, [])}
    wanted = set(keys)
    turns: dict[str, list[Record]] = defaultdict(list)
    for r in rows[TURN]:
        if r.status == "ok" and r.parent in wanted:
            turns[r.parent].append(r)
    out = []
    for key in keys:
        ep = episodes[key]
        ed = ep.data if isinstance(ep.data, dict) else {}
        skey = _text(ed.get("scenario_key")) or split_episode_key(key)[0]
        sc = scenarios.get(skey)
        try:
            sv = scenario_view(skey, sc.data) if sc is not None and sc.status == "ok" else None
        except DataError:
            sv = None  # a scenario row the views cannot read: the dialogue is shown without it
        setting = sv.setting if sv is not None else ""
        title = " ".join(setting.split()[:14]) + (" …" if len(setting.split()) > 14 else "")
        sample = DialogueSample(
            key=key,
            culture=_culture_of(ep),
            title=title,
            setting=setting,
            relationship=sv.relationship if sv is not None else "",
            characters=[_character_name(c) for c in sv.characters] if sv is not None else [],
            goals=list(sv.goals) if sv is not None else [],
            end_reason=_text(ed.get("end_reason")) or "unknown",
        )
        j = judgements.get(key)
        jd = j.data if j is not None and isinstance(j.data, dict) else {}
        kept, reason = judgement_kept(jd, rule)
        if reason != NOT_JUDGED:
            sample.kept, sample.drop_reason = kept, reason
        sample.verdicts = _verdicts(jd)
        if j is not None and j.status != "ok":
            sample.judge_error = j.error or "failed"
        sample.turns = list(dialogue_turns(turns[key], intentions))
        r = reflections.get(key)
        if r is not None and r.status == "ok" and isinstance(r.data, dict):
            sample.reflection = _reflection_sample(r.data)
        elif r is not None:
            sample.reflection_error = r.error or "failed"
        out.append(sample)
    return out
