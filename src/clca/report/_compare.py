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
from ..environment import differences as environment_differences
from ..errors import ConfigError, DataError
from ..records import CONFIG, ENVIRONMENT_META, METRIC, SURVEY_ANSWER
from ..store import DB_NAME, RunStore
from ._compare_rows import BASE_GROUP, EVAL_ONLY_GROUP, CompareRow, DistributionRow, RunInfo, dose_config
from ._metrics import METRICS, ModelScores, read_wvs
from ._paired import UNIT_ITEMS, UNIT_PERSONAS, PairedStat, adjust, paired_stats
from ._specificity import SpecificityStat, judge, specificity

SETUP_KEYS = ("items", "questionnaire", "survey", "reference", "personas", "mode", "samples", "epsilon")
#: dataset variants of the format-only controls: the default reference arm (the first one found, in this order)
REFERENCE_VARIANTS = ("survey_uniform", "survey_shuffled")
__all__ = [
    "UNIT_ITEMS",
    "UNIT_PERSONAS",
    "CompareRow",
    "DistributionRow",
    "PairedStat",
    "RunInfo",
    "SpecificityStat",
]


class Comparison(BaseModel):
    runs: list[RunInfo]
    cultures: list[str]
    rows: list[CompareRow]
    metrics: list[str] = Field(description="metric columns present in any row, in report order")
    best: dict[str, dict[str, float]] = Field(default_factory=dict, description="culture -> metric -> best value")
    paired: list[PairedStat] = Field(default_factory=list)
    specificity: list[SpecificityStat] = Field(default_factory=list)
    reference_arm: str | None = Field(None, description="run label of the reference arm (--reference-arm)")
    targets: dict[str, list[str]] = Field(default_factory=dict, description="run label -> target cultures")
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
    ranks: dict[tuple[str, str], tuple[int, int]] = Field(default_factory=dict, description="(label, culture) -> rank")
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
    config = store.get_meta(CONFIG)
    metrics = list(store.iter(METRIC, status=None))
    answers = list(store.iter(SURVEY_ANSWER, status="ok"))
    wvs = read_wvs(metrics, answers, config)
    if not wvs.scores:
        raise DataError(f"{path}: no WVS metrics stored in this run (run its eval stage first)")
    ev = eval_config(config, str(path))
    loaded = _Loaded(
        info=RunInfo(label=label, path=str(path), setup=_setup(ev, wvs.scores, answers)),
        scores=wvs.scores,
        ev=ev,
    )
    env = store.get_meta(ENVIRONMENT_META)
    loaded.info.environment = env if isinstance(env, dict) else None
    cfg = config if isinstance(config, dict) else {}
    loaded.info.name = cfg.get("name") if isinstance(cfg.get("name"), str) else None
    models = cfg.get("models") if isinstance(cfg.get("models"), dict) else {}
    loaded.info.student = models.get("student") if isinstance(models.get("student"), str) else None
    if cfg:
        ds = cfg.get("dataset") if isinstance(cfg.get("dataset"), dict) else {}
        loaded.info.dataset_variant = str(ds.get("variant") or "full")
        loaded.info.max_steps, loaded.info.dose_key = dose_config(cfg)
    loaded.info.seed = cfg.get("seed") if isinstance(cfg.get("seed"), int) else None
    if ev is not None:
        from ..wvs import resolve_country

        known = {s.culture for s in wvs.scores}
        for c in ev.cultures:
            try:
                loaded.info.targets.append(resolve_country(c, known))
            except ConfigError:
                continue
    loaded.ranks = {(r.model, r.target): (r.rank, r.cultures) for r in wvs.ranks}
    if loaded.info.seed is None:  # a `clca eval` run has no run config: the seed its evaluations recorded
        from ..records import EVAL_SEEDS_META

        seeds = store.get_meta(EVAL_SEEDS_META)
        values = set(seeds.values()) if isinstance(seeds, dict) else set()
        if len(values) == 1 and isinstance(next(iter(values)), int):
            loaded.info.seed = next(iter(values))
    for sh in wvs.answer_shares:
        loaded.specificity_models[(sh.model, sh.style, sh.culture)] = sh.items
    if accuracy and ev is not None and any("accuracy" in s.values for s in wvs.scores):
        loaded.persona_accuracy = _persona_accuracy(store, ev, wvs.scores)
    return loaded


Hits = dict[tuple[str, str, str], dict[str, dict[str, float]]]


def _persona_accuracy(store: RunStore, ev: Any, scores: list[ModelScores]) -> Hits:
    """(alias, style, culture) -> persona -> item -> hit, recomputed from the stored answers and the
    evaluation's personas (the same function `clca.wvs.evaluate` scores accuracy with)."""
    from ..records import key_prefix
    from ..wvs import Answer, eval_inputs, eval_personas, persona_hits

    _, ref, survey = eval_inputs(ev)
    personas = {}
    out = {}
    for s in scores:
        if "accuracy" not in s.values or s.culture not in ref.countries:
            continue
        if s.culture not in personas:
            personas[s.culture] = eval_personas(ev, ref, survey, s.culture)
        answers = {}
        for rec in store.iter(SURVEY_ANSWER, prefix=key_prefix(s.model, s.style, s.culture)):
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
    from ..wvs import eval_inputs

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
    reference_arm: str | None = None,
    target: str | None = None,
) -> Comparison:
    """Read every run, check that their evaluation setups agree, and compute the comparison.
    `reference_arm`: run label (or "none") of the control every other run's student is compared with
    (default: a run whose dataset variant is one of REFERENCE_VARIANTS); `target`: the target culture of
    every run (default: each run config's cultures; runs of `clca eval` have none)."""
    if not run_dirs:
        raise ConfigError("compare: give at least one run directory")
    paths = [Path(p) for p in run_dirs]
    if len({p.resolve() for p in paths}) < len(paths):
        raise ConfigError("compare: a run directory is given twice")
    loaded = [_load(p, lab) for p, lab in zip(paths, _labels(paths), strict=True)]
    first = loaded[0].info
    for lo in loaded[1:]:
        lo.info.environment_differs = [
            f"{k}: {va} → {vb}" for k, va, vb in environment_differences(first.environment, lo.info.environment)
        ]
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
    comp = _assemble(loaded, allow_different=allow_different, baseline=baseline, resamples=resamples, seed=seed)
    comp.reference_arm = _reference_arm(comp, reference_arm)
    comp.targets = _targets(comp, target)
    comp.paired = paired_stats(comp, lambda a, b: _same_personas(loaded, a, b), baseline)
    comp.specificity = specificity(comp, comp.paired, comp.targets)
    extra: dict[tuple[str, str, str, str], list[Any]] = defaultdict(list)
    for sp in comp.specificity:
        extra[(sp.kind, sp.row, sp.reference, sp.metric)].append(sp)
    adjust(comp.paired, extra)
    judge(comp.specificity, comp.paired)
    return comp


def _reference_arm(comp: Comparison, named: str | None) -> str | None:
    labels = [r.label for r in comp.runs]
    if named is not None:
        if named.lower() == "none":
            return None
        hit = [r.label for r in comp.runs if named in (r.label, r.path, Path(r.path).name)]
        if not hit:
            raise ConfigError(f"--reference-arm {named!r}: not one of the compared runs; runs: {', '.join(labels)}")
        if not any(r.run == hit[0] and r.role == "adapted" for r in comp.rows):
            raise ConfigError(f"--reference-arm {named!r}: the run has no adapted student to compare with")
        return hit[0]
    for variant in REFERENCE_VARIANTS:
        for r in comp.runs:
            if r.dataset_variant == variant and len(comp.runs) > 1:
                return r.label
    return None


def _targets(comp: Comparison, target: str | None) -> dict[str, list[str]]:
    if target is None:
        return {r.label: [c for c in r.targets if c in comp.cultures] for r in comp.runs}
    from ..wvs import resolve_country

    try:
        code = resolve_country(target, set(comp.cultures))
    except ConfigError as e:
        raise ConfigError(f"--target {target!r}: {e.one_line()}") from None
    if code not in comp.cultures:
        raise ConfigError(f"--target {target!r}: not evaluated in these runs; cultures: {', '.join(comp.cultures)}")
    return {r.label: [code] for r in comp.runs}


def run_comparison(store: RunStore, label: str) -> Comparison:
    """One run's evaluation as a comparison of its own rows, read from an open store: what the single-run
    report (`clca report`) draws the comparison's figures from. No paired statistics; raises DataError
    when the run holds no WVS metrics."""
    lo = _load_store(store, Path(store.run_dir), label, accuracy=False)
    return _assemble([lo], allow_different=False, baseline=None, resamples=0, seed=0)


def _group(info: RunInfo, is_base: bool) -> str:
    if is_base:
        return BASE_GROUP
    return EVAL_ONLY_GROUP if info.dataset_variant is None else f"dataset: {info.dataset_variant}"


def _assemble(
    loaded: list[_Loaded], *, allow_different: bool, baseline: str | None, resamples: int, seed: int
) -> Comparison:
    """The comparison of loaded runs (their setups already checked): rows in table order, best values and
    per-item distributions (the paired statistics are added by `build_comparison`)."""
    rows: list[CompareRow] = []
    for lo in loaded:
        for s in lo.scores:
            is_base = s.role == "base"
            rank = lo.ranks.get((s.label, s.culture), (None, None))
            row = CompareRow(
                run=lo.info.label,
                model=s.model,
                model_string=_model_string(lo.info.student, is_base),
                style=s.style,
                culture=s.culture,
                role=s.role,
                group=_group(lo.info, is_base),
                dataset_variant=lo.info.dataset_variant,
                rank=rank[0],
                rank_of=rank[1],
                values=dict(s.values),
                marked=bool(lo.info.differs),
                env_marked=bool(lo.info.environment_differs),
                per_item=s.per_item,
            )
            hits = lo.persona_accuracy.get((s.model, s.style, s.culture))
            if hits:
                row.per_persona_accuracy = _persona_means(hits)
            rows.append(row)
    group_order = {BASE_GROUP: 0}
    for lo in loaded:
        group_order.setdefault(_group(lo.info, False), len(group_order))
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
    for lo in loaded:
        comp.distributions += _distributions(lo)
    return comp


def _same_personas(loaded: list[_Loaded], a: str, b: str) -> bool:
    """Runs a and b asked the same personas (same setup and seed): accuracy can be paired by persona."""
    info = {lo.info.label: lo.info for lo in loaded}
    return a == b or (info[a].setup == info[b].setup and info[a].seed == info[b].seed)
