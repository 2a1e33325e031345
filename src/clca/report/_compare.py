"""Several runs side by side: `build_comparison(run_dirs) -> Comparison`.

Every number comes from the runs' stores through the report's data layer (`read_wvs`): one row per
(run, model alias, prompt style) and culture, with the stored means and 95 % intervals. Runs whose
evaluation setup differs (items, questionnaire, survey, reference, personas, mode, samples, epsilon)
are refused with a `ConfigError` naming the first difference, unless `allow_different`, which marks
them. Paired statistics (`_stats`) compare each adapted row with its run's base row (same style and
culture), and every row with a chosen baseline row.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..config import validation_message
from ..errors import ConfigError, DataError
from ..store import DB_NAME, RunStore
from ._metrics import METRICS, Estimate, ModelScores, read_wvs
from ._stats import holm, paired_bootstrap, paired_differences, wilcoxon_p

SETUP_KEYS = ("items", "questionnaire", "survey", "reference", "personas", "mode", "samples", "epsilon")
BASE_GROUP = "base model"
UNIT_ITEMS = "questions"
UNIT_PERSONAS = "personas"


class RunInfo(BaseModel):
    label: str = Field(description="the run's short name in tables (its directory name, made unique)")
    path: str
    name: str | None = Field(None, description="the config's name")
    student: str | None = Field(None, description="models.student of the run config")
    dataset_variant: str = Field("full", description="dataset.variant of the run config (the ablation)")
    seed: int | None = None
    targets: list[str] = Field(default_factory=list, description="the run's target cultures (ISO alpha-3)")
    setup: dict[str, Any] = Field(default_factory=dict, description="what must agree for runs to be compared")
    differs: list[str] = Field(default_factory=list, description="setup keys that differ from the first run")


class CompareRow(BaseModel):
    run: str
    model: str = Field(description="model alias in the run (base, adapted, ...)")
    model_string: str | None = Field(None, description="the model the alias stands for")
    style: str
    culture: str
    role: str
    group: str = Field(description=f"'{BASE_GROUP}' or 'dataset: <variant>' (the ablation)")
    dataset_variant: str
    values: dict[str, Estimate] = Field(default_factory=dict)
    marked: bool = Field(False, description="its run's evaluation setup differs from the first run's")
    per_item: dict[str, dict[str, float]] = Field(default_factory=dict, exclude=True)
    per_persona_accuracy: dict[str, float] = Field(default_factory=dict, exclude=True)

    @property
    def ident(self) -> str:
        return f"{self.run}:{self.model}:{self.style}"


class PairedStat(BaseModel):
    culture: str
    metric: str
    row: str = Field(description="run:model:style")
    baseline: str = Field(description="run:model:style")
    kind: str = Field(description="'adapted vs base' (same run) or 'vs baseline'")
    unit: str = Field(description="what the bootstrap resamples: questions or personas")
    n: int = Field(description="paired units in the bootstrap")
    diff: float = Field(description="mean of row minus baseline over the paired units")
    ci_low: float
    ci_high: float
    n_items: int = Field(description="paired questions in the Wilcoxon test")
    p: float | None = Field(None, description="Wilcoxon signed-rank, two-sided, over questions")
    p_holm: float | None = Field(None, description="Holm-adjusted across cultures (per pair and metric)")


class DistributionRow(BaseModel):
    run: str
    model: str
    style: str
    culture: str
    item: str
    option: str
    model_share: float
    survey_share: float


class Comparison(BaseModel):
    runs: list[RunInfo]
    cultures: list[str]
    rows: list[CompareRow]
    metrics: list[str] = Field(description="metric columns present in any row, in report order")
    best: dict[str, dict[str, float]] = Field(default_factory=dict, description="culture -> metric -> best value")
    paired: list[PairedStat] = Field(default_factory=list)
    distributions: list[DistributionRow] = Field(default_factory=list)
    baseline: str | None = None
    resamples: int = 2000
    seed: int = 0
    allow_different: bool = False

    def rows_of(self, culture: str) -> list[CompareRow]:
        return [r for r in self.rows if r.culture == culture]


def _file_id(path: str | None) -> str | None:
    """A file named in a config: its name and content hash when readable here, else the path as written."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return f"{p.name} (sha256 {h.hexdigest()[:12]})"
    return str(path)


def eval_config(config: dict[str, Any] | None, where: str) -> Any:
    """The run's clca.wvs.EvalConfig, composed as `clca run` composes it (cultures, compare and seed from
    the top level); None for a run without a config."""
    from ..wvs import EvalConfig

    if not isinstance(config, dict):
        return None
    ev = config.get("eval") if isinstance(config.get("eval"), dict) else {}
    data = {"cultures": config.get("cultures") or [], "compare": config.get("compare") or [], **ev}
    if "seed" in config:
        data.setdefault("seed", config["seed"])
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, f"{where}: run config eval")) from None


def _setup(ev: Any, scores: list[ModelScores], answers: list[Any]) -> dict[str, Any]:
    """What must agree: from the run config's eval section; for a run without one (`clca eval`), the
    evaluated items and what the stored answers show (answer mode, personas per culture)."""
    items: dict[str, list[str]] = {}
    for s in scores:
        items.setdefault(s.culture, [])
        items[s.culture] = sorted(set(items[s.culture]) | {i for v in s.per_item.values() for i in v})
    if ev is None:
        from ..wvs import PERSONA_STYLES

        modes: set[str] = set()
        personas: dict[str, set[str]] = defaultdict(set)
        for r in answers:
            d = r.data if isinstance(r.data, dict) else {}
            modes.add(str(d.get("mode")))
            if d.get("style") in PERSONA_STYLES:
                personas[str(d.get("culture"))].add(str(d.get("persona")))
        return {
            "items": items,
            "personas": {c: len(v) for c, v in sorted(personas.items())} or None,
            "mode": ", ".join(sorted(modes)) or None,
        }
    return {
        "items": items,
        "questionnaire": _file_id(ev.questionnaire),
        "survey": [_file_id(f) for f in ev.survey],
        "reference": _file_id(ev.reference),
        "personas": ev.personas,
        "mode": ev.mode,
        "samples": ev.samples if ev.mode == "generate" else None,
        "epsilon": ev.epsilon,
    }


def _difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str, str] | None:
    """(key, value in a, value in b) of the first setup key that differs; item sets per common culture."""
    for key in SETUP_KEYS:
        if key not in a or key not in b:
            continue
        va, vb = a[key], b[key]
        if key == "items":
            for c in sorted(set(va) & set(vb)):
                if va[c] != vb[c]:
                    only_a, only_b = sorted(set(va[c]) - set(vb[c])), sorted(set(vb[c]) - set(va[c]))
                    return (
                        f"items ({c})",
                        f"{len(va[c])} items" + (f", {only_a[:3]} not in the other" if only_a else ""),
                        f"{len(vb[c])} items" + (f", {only_b[:3]} not in the other" if only_b else ""),
                    )
            continue
        if type(va) is type(vb) and va != vb:  # a config's count vs counts seen in a config-less run: skipped
            return (f"eval.{key}", repr(va), repr(vb))
    return None


def _labels(paths: list[Path]) -> list[str]:
    """Directory names, with parent folders added until they are unique."""
    labels = [p.name for p in paths]
    depth = 1
    while len(set(labels)) < len(labels) and depth < 6:
        depth += 1
        labels = ["/".join(p.parts[-depth:]) for p in paths]
    if len(set(labels)) < len(labels):
        labels = [f"{lab}#{i + 1}" for i, lab in enumerate(labels)]
    return labels


class _Loaded(BaseModel):
    info: RunInfo
    scores: list[ModelScores]
    ev: Any = None
    specificity_models: dict[tuple[str, str, str], dict[str, list[float]]] = Field(default_factory=dict)
    persona_accuracy: dict[tuple[str, str, str], dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="(alias, style, culture) -> persona -> item -> hit"
    )


def _load(path: Path, label: str) -> _Loaded:
    if not (path / DB_NAME).is_file():
        raise DataError(f"{path}: not a run directory (no {DB_NAME} in it)")
    with RunStore(path, read_only=True) as store:
        return _load_store(store, path, label)


def _load_store(store: RunStore, path: Path, label: str, *, accuracy: bool = True) -> _Loaded:
    """One run's rows from an open store; `accuracy=False` skips the per-persona hits (paired statistics only)."""
    config = store.get_meta("config")
    metrics = list(store.iter("metric", status=None))
    answers = list(store.iter("survey_answer", status="ok"))
    wvs = read_wvs(metrics, answers, config)
    if not wvs.scores:
        raise DataError(f"{path}: no WVS metrics stored in this run (run its eval stage first)")
    ev = eval_config(config, str(path))
    loaded = _Loaded(
        info=RunInfo(label=label, path=str(path), setup=_setup(ev, wvs.scores, answers)),
        scores=wvs.scores,
        ev=ev,
    )
    cfg = config if isinstance(config, dict) else {}
    loaded.info.name = cfg.get("name") if isinstance(cfg.get("name"), str) else None
    models = cfg.get("models") if isinstance(cfg.get("models"), dict) else {}
    loaded.info.student = models.get("student") if isinstance(models.get("student"), str) else None
    ds = cfg.get("dataset") if isinstance(cfg.get("dataset"), dict) else {}
    loaded.info.dataset_variant = str(ds.get("variant") or "full")
    loaded.info.seed = cfg.get("seed") if isinstance(cfg.get("seed"), int) else None
    if ev is not None:
        from ..wvs import resolve_country

        known = {s.culture for s in wvs.scores}
        for c in ev.cultures:
            try:
                loaded.info.targets.append(resolve_country(c, known))
            except ConfigError:
                continue
    for sh in wvs.answer_shares:
        loaded.specificity_models[(sh.model, sh.style, sh.culture)] = sh.items
    if accuracy and ev is not None and any("accuracy" in s.values for s in wvs.scores):
        loaded.persona_accuracy = _persona_accuracy(store, ev, wvs.scores)
    return loaded


Hits = dict[tuple[str, str, str], dict[str, dict[str, float]]]


def _persona_accuracy(store: RunStore, ev: Any, scores: list[ModelScores]) -> Hits:
    """(alias, style, culture) -> persona -> item -> hit, recomputed from the stored answers and the
    evaluation's personas (the same function `clca.wvs.evaluate` scores accuracy with)."""
    from ..wvs import ANSWER, Answer
    from ..wvs._evaluate import eval_inputs, eval_personas, persona_hits

    _, ref, survey = eval_inputs(ev)
    personas = {}
    out = {}
    for s in scores:
        if "accuracy" not in s.values or s.culture not in ref.countries:
            continue
        if s.culture not in personas:
            personas[s.culture] = eval_personas(ev, ref, survey, s.culture)
        answers = {}
        for rec in store.iter(ANSWER, prefix=f"{s.model}/{s.style}/{s.culture}/"):
            a = Answer.model_validate(rec.data)
            if a.variant == "base":
                answers[(a.persona, a.item)] = a
        out[(s.model, s.style, s.culture)] = persona_hits(personas[s.culture], answers, s.style)
    return out


def best_values(rows: list[CompareRow]) -> dict[str, dict[str, float]]:
    best: dict[str, dict[str, float]] = {}
    for r in rows:
        for m, e in r.values.items():
            cur = best.setdefault(r.culture, {}).get(m)
            lower = METRICS.get(m, ("", True))[1]
            if cur is None or (e.value < cur if lower else e.value > cur):
                best[r.culture][m] = e.value
    return best


def _distributions(loaded: _Loaded) -> list[DistributionRow]:
    """Per item and option: the model's share (stored with the run's specificity row) and the survey's."""
    if loaded.ev is None or not loaded.specificity_models:
        return []
    from ..wvs._evaluate import eval_inputs

    q, ref, _ = eval_inputs(loaded.ev)
    out = []
    for (alias, style, culture), model in sorted(loaded.specificity_models.items()):
        cref = ref.countries.get(culture)
        for iid, shares in sorted(model.items()):
            dist = cref.items.get(iid) if cref is not None else None
            if dist is None:
                continue
            options = [str(c) for c in dist.codes] + ["safeguarded"]
            survey = [*dist.shares, 0.0]
            for opt, ms, ss in zip(options, shares, survey, strict=False):
                out.append(
                    DistributionRow(
                        run=loaded.info.label,
                        model=alias,
                        style=style,
                        culture=culture,
                        item=iid,
                        option=opt,
                        model_share=float(ms),
                        survey_share=float(ss),
                    )
                )
    return out


def _pair(
    row: CompareRow, base: CompareRow, kind: str, resamples: int, seed: int, same_personas: bool
) -> list[PairedStat]:
    out = []
    for metric in METRICS:
        a, b = row.per_item.get(metric), base.per_item.get(metric)
        if not a or not b:
            continue
        d_items = paired_differences(a, b)
        if not d_items:
            continue
        unit, diffs = UNIT_ITEMS, list(d_items.values())
        if metric == "accuracy" and same_personas and row.per_persona_accuracy and base.per_persona_accuracy:
            d_p = paired_differences(row.per_persona_accuracy, base.per_persona_accuracy)
            if d_p:
                unit, diffs = UNIT_PERSONAS, list(d_p.values())
        mean, lo, hi = paired_bootstrap(diffs, resamples=resamples, seed=seed)
        out.append(
            PairedStat(
                culture=row.culture,
                metric=metric,
                row=row.ident,
                baseline=base.ident,
                kind=kind,
                unit=unit,
                n=len(diffs),
                diff=mean,
                ci_low=lo,
                ci_high=hi,
                n_items=len(d_items),
                p=wilcoxon_p(list(d_items.values())),
            )
        )
    return out


def _persona_means(hits: dict[str, dict[str, float]]) -> dict[str, float]:
    return {p: sum(v.values()) / len(v) for p, v in hits.items() if v}


def _model_string(student: str | None, is_base: bool) -> str | None:
    if student is None:
        return None
    return student if is_base else f"{student} + adapter"


def build_comparison(
    run_dirs: list[str | Path],
    *,
    allow_different: bool = False,
    baseline: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Read every run, check that their evaluation setups agree, and compute the comparison."""
    if not run_dirs:
        raise ConfigError("compare: give at least one run directory")
    paths = [Path(p) for p in run_dirs]
    if len({p.resolve() for p in paths}) < len(paths):
        raise ConfigError("compare: a run directory is given twice")
    loaded = [_load(p, lab) for p, lab in zip(paths, _labels(paths), strict=True)]
    first = loaded[0].info
    for lo in loaded[1:]:
        diff = _difference(first.setup, lo.info.setup)
        if diff is None:
            continue
        key, va, vb = diff
        if not allow_different:
            raise ConfigError(
                f"{lo.info.path}: evaluation setup differs from {first.path} in {key} ({vb} vs {va}); "
                "compare only runs evaluated alike, or pass --allow-different to mark them"
            )
        lo.info.differs = [k for k in SETUP_KEYS if _difference({k: first.setup.get(k)}, {k: lo.info.setup.get(k)})]
        if not lo.info.differs:
            lo.info.differs = [key]
    return _assemble(
        loaded, allow_different=allow_different, baseline=baseline, resamples=resamples, seed=seed, paired=True
    )


def run_comparison(store: RunStore, label: str) -> Comparison:
    """One run's evaluation as a comparison of its own rows, read from an open store: what the single-run
    report (`clca report`) draws the comparison's figures from. No paired statistics; raises DataError
    when the run holds no WVS metrics."""
    lo = _load_store(store, Path(store.run_dir), label, accuracy=False)
    return _assemble([lo], allow_different=False, baseline=None, resamples=0, seed=0, paired=False)


def _assemble(
    loaded: list[_Loaded], *, allow_different: bool, baseline: str | None, resamples: int, seed: int, paired: bool
) -> Comparison:
    """The comparison of loaded runs (their setups already checked): rows in table order, best values,
    paired statistics (when `paired`) and per-item distributions."""
    rows: list[CompareRow] = []
    for lo in loaded:
        for s in lo.scores:
            is_base = s.role == "base"
            row = CompareRow(
                run=lo.info.label,
                model=s.model,
                model_string=_model_string(lo.info.student, is_base),
                style=s.style,
                culture=s.culture,
                role=s.role,
                group=BASE_GROUP if is_base else f"dataset: {lo.info.dataset_variant}",
                dataset_variant=lo.info.dataset_variant,
                values=dict(s.values),
                marked=bool(lo.info.differs),
                per_item=s.per_item,
            )
            hits = lo.persona_accuracy.get((s.model, s.style, s.culture))
            if hits:
                row.per_persona_accuracy = _persona_means(hits)
            rows.append(row)
    group_order = {BASE_GROUP: 0}
    for lo in loaded:
        group_order.setdefault(f"dataset: {lo.info.dataset_variant}", len(group_order))
    run_order = {lo.info.label: i for i, lo in enumerate(loaded)}
    rows.sort(key=lambda r: (r.culture, group_order[r.group], run_order[r.run], r.model, r.style))
    cultures = sorted({r.culture for r in rows})
    metrics = [m for m in METRICS if any(m in r.values for r in rows)]
    comp = Comparison(
        runs=[lo.info for lo in loaded],
        cultures=cultures,
        rows=rows,
        metrics=metrics,
        best=best_values(rows),
        baseline=baseline,
        resamples=resamples,
        seed=seed,
        allow_different=allow_different,
    )
    comp.paired = _paired(comp, loaded, baseline) if paired else []
    for lo in loaded:
        comp.distributions += _distributions(lo)
    return comp


def _same_personas(loaded: list[_Loaded], a: str, b: str) -> bool:
    """Runs a and b asked the same personas (same setup and seed): accuracy can be paired by persona."""
    info = {lo.info.label: lo.info for lo in loaded}
    return a == b or (info[a].setup == info[b].setup and info[a].seed == info[b].seed)


def _paired(comp: Comparison, loaded: list[_Loaded], baseline: str | None) -> list[PairedStat]:
    out: list[PairedStat] = []
    by: dict[tuple[str, str, str, str], CompareRow] = {(r.culture, r.run, r.model, r.style): r for r in comp.rows}
    for r in comp.rows:
        if r.role != "adapted":
            continue
        same = (r.culture, r.run, r.style)
        base = next((b for b in comp.rows if b.role == "base" and (b.culture, b.run, b.style) == same), None)
        if base is not None:
            out += _pair(r, base, "adapted vs base", comp.resamples, comp.seed, True)
    if baseline is not None:
        parts = baseline.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--baseline {baseline!r}: write it as RUN:MODEL:STYLE, e.g. demo:base:persona")
        run, model, style = parts
        if not any((r.run, r.model, r.style) == (run, model, style) for r in comp.rows):
            have = ", ".join(sorted({r.ident for r in comp.rows}))
            raise ConfigError(f"--baseline {baseline!r}: no such row; rows: {have}")
        for r in comp.rows:
            base = by.get((r.culture, run, model, style))
            if base is None or base is r:
                continue
            out += _pair(r, base, "vs baseline", comp.resamples, comp.seed, _same_personas(loaded, r.run, run))
    families: dict[tuple[str, str, str, str], list[PairedStat]] = defaultdict(list)
    for s in out:
        families[(s.kind, s.row, s.baseline, s.metric)].append(s)
    for fam in families.values():
        for s, adj in zip(fam, holm([s.p for s in fam]), strict=True):
            s.p_holm = adj
    return out
