"""build_dataset: run database -> multi-task rows -> split, dedup, mix -> exports + info.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._files import atomic_dir
from .._outputs import check_output
from ..errors import DataError
from ..records import SCENARIO, culture_meta
from ..store import RunStore
from ._collab_rows import collaborative_rows
from ._config import SURVEY_VARIANTS, DatasetConfig, DatasetInfo
from ._export import SPLITS, write_hf, write_jsonl, write_sharegpt
from ._mix import dedup, mix, split_by_scenario
from ._rows import Row, dialogue_rows, intent_rows, load_control
from ._source import SourceReport, iter_dialogues

INFO_FILE = "info.json"


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        counts[k] = counts.get(k, 0) + v


def collect_rows(
    store: RunStore, cfg: DatasetConfig, progress: bool = True, eval_cfg: Any = None
) -> tuple[list[Row], SourceReport, int]:
    """All rows of the variant's tasks (before split and mixing), the source report, episodes used.
    The survey_* variants read the evaluation's survey data: `eval_cfg` (a clca.wvs.EvalConfig), else
    the eval section of the run's stored config."""
    report = SourceReport()
    if cfg.variant in SURVEY_VARIANTS:
        from ._survey_rows import survey_rows

        rows, skipped = survey_rows(cfg, eval_cfg if eval_cfg is not None else stored_eval_config(store))
        _add(report.skipped, skipped)
        return rows, report, 0
    if cfg.variant == "control":
        assert cfg.control_path is not None
        return load_control(cfg.control_path), report, 0
    tasks = cfg.tasks()
    rows: list[Row] = []
    used = 0
    reflections = _reflections(store) if "collaborative" in tasks else {}
    dialogues = iter_dialogues(store, judge_rule=cfg.judge_rule, report=report)
    seen: set[str] = set()
    for d in tqdm(dialogues, desc="dialogues", disable=not progress, leave=False):
        seen.add(d.scenario.culture_code.upper())
        if cfg.culture and d.scenario.culture_code.upper() != cfg.culture.upper():
            continue
        if not d.kept and cfg.variant != "no_filter":
            report.skip("not kept by the judge")
            continue
        used += 1
        if "dialogue" in tasks:
            r, s = dialogue_rows(d, cfg)
            rows += r
            _add(report.skipped, s)
        if "intent" in tasks:
            r, s = intent_rows(d, cfg)
            rows += r
            _add(report.skipped, s)
        if "collaborative" in tasks:
            r, s = collaborative_rows(d, reflections.get(d.episode_key), cfg)
            rows += r
            _add(report.skipped, s)
    if cfg.culture and seen and cfg.culture.upper() not in seen:  # a selection that leaves nothing
        raise DataError(
            f"dataset.culture {cfg.culture!r}: no dialogues of that culture in the run; "
            f"cultures: {', '.join(sorted(seen))}"
        )
    return rows, report, used


def _reflections(store: RunStore) -> dict[str, Any]:
    from ..reflect import load_reflections

    found = load_reflections(store)
    if not found:
        raise DataError(
            "dataset: the variant's collaborative task needs stored reflections and the run has none; "
            "run the reflect stage (reflect.enabled: true)"
        )
    return found


def stored_eval_config(store: RunStore) -> Any:
    """The eval section of the run's stored config (what `clca run` evaluates with)."""
    from pydantic import ValidationError

    from ..records import CONFIG
    from ..wvs import EvalConfig

    raw = store.get_meta(CONFIG)
    ev = raw.get("eval") if isinstance(raw, dict) else None
    if not isinstance(ev, dict):
        raise DataError(f"{store.run_dir}: the survey control variants need a run made by `clca run` (no eval config)")
    try:
        return EvalConfig.model_validate(ev)
    except ValidationError as e:
        raise DataError(f"{store.run_dir}: stored eval config: {' '.join(str(e).split())}") from None


def _with_run_culture_names(store: RunStore, cfg: DatasetConfig) -> DatasetConfig:
    """Culture names of the run's own culture records (custom profiles too) under the configured ones."""
    names: dict[str, str] = {}
    for code in {str(r.data.get("culture")) for r in store.iter(SCENARIO) if r.data and r.data.get("culture")}:
        rec = store.get_meta(culture_meta(code))
        if isinstance(rec, dict) and rec.get("name"):
            names[code] = str(rec["name"])
    return cfg.model_copy(update={"culture_names": {**names, **cfg.culture_names}}) if names else cfg


def build_dataset(
    store: RunStore | str | Path,
    cfg: DatasetConfig | None = None,
    out_dir: str | Path = "dataset",
    *,
    overwrite: bool = False,
    progress: bool = True,
    eval_cfg: Any = None,
) -> DatasetInfo:
    """Build the training data of one variant and write every export into out_dir atomically (`eval_cfg`:
    the evaluation settings the survey_* variants build from; see collect_rows)."""
    cfg = cfg or DatasetConfig()
    run_dir = store.run_dir if isinstance(store, RunStore) else Path(store)
    check_output(out_dir, kind="dir", inputs=[run_dir, cfg.control_path], overwrite=overwrite, own=(INFO_FILE,))
    own = not isinstance(store, RunStore)
    if own:
        from ..store import DB_NAME

        if not (Path(store) / DB_NAME).is_file():  # type: ignore[arg-type]
            raise DataError(f"{store}: not a run directory (no {DB_NAME} in it)")
    st = RunStore(store, read_only=True) if own else store
    try:
        cfg = _with_run_culture_names(st, cfg)
        rows, report, used = collect_rows(st, cfg, progress, eval_cfg)
    finally:
        if own:
            st.close()
    if not rows:
        raise DataError(
            f"variant {cfg.variant!r}: no training rows ({report.episodes} episodes read, {report.kept} kept by the "
            f"judge, skipped: {report.skipped or 'none'})"
        )
    removed = 0
    if cfg.dedup:
        rows, removed = dedup(rows)
    train, val, train_sc, val_sc = split_by_scenario(rows, cfg.val_fraction, cfg.seed)
    splits: dict[str, list[Row]] = {}
    for name, part in (("train", train), ("validation", val)):
        by_task: dict[str, list[Row]] = {}
        for r in part:
            by_task.setdefault(r["task"], []).append(r)
        splits[name] = mix(by_task, cfg, name)
    stats: dict[str, Any] = token_stats_or_empty(splits, cfg.tokenizer)
    out = Path(out_dir)
    with atomic_dir(out, overwrite, command="dataset build") as tmp:
        for split in SPLITS:
            write_jsonl(tmp / f"{split}.jsonl", splits[split])
        left_out = write_sharegpt(tmp / "sharegpt", splits, name=f"clca_{cfg.variant}")
        if any(left_out.values()):
            report.skipped["sharegpt: turns not alternating (left out of sharegpt only)"] = sum(left_out.values())
        write_hf(tmp / "hf", splits, progress)
        info = DatasetInfo(
            out_dir=out,
            config=json.loads(cfg.model_dump_json()),
            rows={s: len(splits[s]) for s in SPLITS},
            rows_by_task={s: _count_tasks(splits[s]) for s in SPLITS},
            scenarios={"train": train_sc, "validation": val_sc},
            episodes_read=report.episodes,
            episodes_used=used,
            duplicates_removed=removed,
            skipped=report.skipped,
            token_stats=stats,
            files={
                "messages_jsonl": "train.jsonl, validation.jsonl",
                "sharegpt": "sharegpt/ (dataset_info.json for LLaMA-Factory)",
                "hf": "hf/ (datasets.load_from_disk)",
            },
        )
        (tmp / INFO_FILE).write_text(info.model_dump_json(indent=2), encoding="utf-8")
    return info


def token_stats_or_empty(splits: dict[str, list[Row]], tokenizer: str | None) -> dict[str, Any]:
    if tokenizer is None:
        return {}
    from ._stats import token_stats

    return token_stats(splits, tokenizer)


def _count_tasks(rows: list[Row]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["task"]] = out.get(r["task"], 0) + 1
    return out


def load_info(dataset_dir: str | Path) -> DatasetInfo:
    path = Path(dataset_dir) / INFO_FILE
    if not path.is_file():
        raise DataError(f"{dataset_dir}: not a clca dataset directory (no {INFO_FILE})")
    return DatasetInfo.model_validate_json(path.read_text(encoding="utf-8"))


def dataset_stats(dataset_dir: str | Path, tokenizer: str = "embedded") -> dict[str, Any]:
    """Token statistics of a built dataset, measured again with any tokenizer."""
    d = Path(dataset_dir)
    load_info(d)
    splits = {s: read_jsonl(d / f"{s}.jsonl") for s in SPLITS}
    return token_stats_or_empty(splits, tokenizer)


def read_jsonl(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{n}: not JSON ({e.msg})") from None
    return rows
