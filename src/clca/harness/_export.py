"""`clca harness export`: the evaluation's prompts as documents plus lm-evaluation-harness task YAMLs.

Layout of the output directory:

    data/<task>.jsonl      one document per prompt of `clca eval` (same personas, items, wording, order)
    lm_eval/<task>.yaml    option log-likelihood task (output_type multiple_choice)
    lm_eval/<task>_gen.yaml  sampled-answer task (generate_until), for chat-only APIs
    lm_eval/utils.py       imports the scoring functions from `clca.harness.lm_eval_utils`
    manifest.json          the evaluation config, the tasks and their document counts

Task names are `clca_wvs_<iso3>_<style>` (tag `clca_wvs`; generate tasks `..._gen`, tag `clca_wvs_gen`).
The system prompt of a document goes into the task's `description` (lm-eval puts it into the system
message under `--apply_chat_template`), the question into the user message, and the options are the
bare option numbers "1".."K" with no delimiter, as `clca eval --mode logprobs` scores them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_dir
from .._outputs import check_output
from ..errors import DataError
from ..wvs import PERSONA_STYLES, SHARED_PERSONA, EvalConfig, answer_seed, build_messages, option_order, plan

_METRICS_HIGHER = {
    "kl": False, "jsd": False, "similarity": True, "w1": False, "majority": True, "accuracy": True,
    "safeguarded": False,
}  # fmt: skip
_UTILS = (
    '"""Scoring for the clca WVS tasks: the functions live in the clca package."""\n\n'
    "from clca.harness.lm_eval_utils import *  # noqa: F401,F403\n"
)


def task_name(culture: str, style: str, generate: bool = False) -> str:
    return f"clca_wvs_{culture.lower()}_{style}" + ("_gen" if generate else "")


@dataclass
class ExportSummary:
    out: Path
    tasks: dict[str, int] = field(default_factory=dict)  # task -> documents
    warnings: list[str] = field(default_factory=list)  # items left out of the selection (for stderr)

    def line(self) -> str:
        n = sum(self.tasks.values())
        return f"{len(self.tasks)} tasks, {n} documents -> {self.out}"


def documents(
    cfg: EvalConfig, max_tokens: int | None = None, warnings: list[str] | None = None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(culture, style) -> documents, in the order `clca eval` asks them; `warnings` gets the plan's lines
    about items left out of the selection."""
    pl = plan(cfg, "harness")
    if warnings is not None:
        warnings.extend(pl.dropped)
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for u in pl.units:
        c = u.persona.country
        msgs = build_messages(u.style, u.persona, u.item, u.variant, cfg.seed)
        system = msgs[0]["content"] if msgs[0]["role"] == "system" else ""
        if u.style in PERSONA_STYLES:
            real = [u.persona.answers[u.item.id]] if u.item.id in u.persona.answers else []
        else:  # the shared answer is every persona's answer (as clca eval scores it)
            real = [p.answers[u.item.id] for p in pl.personas[c] if u.item.id in p.answers]
        order = option_order(u.item, u.variant, cfg.seed)
        out[(c, u.style)].append(
            {
                "id": u.key,
                "culture": c,
                "style": u.style,
                "persona": u.persona.id if u.persona.id != SHARED_PERSONA else SHARED_PERSONA,
                "item": u.item.id,
                "variant": u.variant,
                "theme": u.item.theme,
                "kind": u.item.kind,
                "codes": u.item.codes,
                "order": order,
                "options": {str(k): v for k, v in u.item.options.items()},
                "choices": [str(k + 1) for k in range(len(order))],
                "system": system,
                "user": msgs[-1]["content"],
                "survey": pl.reference.countries[c].items[u.item.id].shares,
                "real_answers": real,
                "epsilon": cfg.epsilon,
                "samples": u.samples,
                "temperature": cfg.temperature,
                "seed": answer_seed(cfg.seed, u.persona.id, u.item.id, u.variant),
                "max_tokens": max_tokens or cfg.max_tokens,
            }
        )
    return dict(out)


def _yaml(task: str, data: Path, generate: bool, max_tokens: int, samples: int, temperature: float) -> str:
    lines = [
        f"task: {task}",
        f"tag: [clca_wvs{'_gen' if generate else ''}]",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(data))}",
        "test_split: test",
        'description: "{{system}}"',
        "doc_to_text: user",
        "doc_to_target: 0",
    ]
    if generate:
        lines += [
            "output_type: generate_until",
            f"repeats: {samples}",
            "generation_kwargs:",
            "  until: []",
            f"  max_gen_toks: {max_tokens}",
            "  do_sample: true",
            f"  temperature: {temperature}",
            "filter_list:",
            "  - name: all",
            "    filter:",
            "      - function: take_first_k",
            f"        k: {samples}",
            "process_results: !function utils.process_results_generate",
        ]
    else:
        lines += [
            "output_type: multiple_choice",
            "doc_to_choice: choices",
            'target_delimiter: ""',
            "process_results: !function utils.process_results",
        ]
    lines.append("metric_list:")
    for m, higher in _METRICS_HIGHER.items():
        lines += [
            f"  - metric: {m}",
            f"    aggregation: !function utils.agg_{m}",
            f"    higher_is_better: {str(higher).lower()}",
        ]
    lines += ["metadata:", "  version: 1.0", ""]
    return "\n".join(lines)


def export_tasks(
    cfg: EvalConfig, out: Path, max_tokens: int | None = None, *, overwrite: bool = False
) -> ExportSummary:
    """Write documents, task YAMLs and a manifest into `out` (written to a temporary folder, then renamed
    over it). The output policy (clca._outputs) is applied before any work."""
    inputs = [*cfg.survey, cfg.reference, cfg.questionnaire]
    target = check_output(out, kind="dir", inputs=inputs, overwrite=overwrite, own=("manifest.json",))
    dropped: list[str] = []
    docs = documents(cfg, max_tokens, dropped)
    max_tokens = max_tokens or cfg.max_tokens
    if not docs:
        raise DataError("the evaluation has no prompts (no items for these cultures?)")
    summary = ExportSummary(out=Path(out), warnings=dropped)
    final_data = target / "data"
    with atomic_dir(target, True, command="harness export") as tmp:
        (tmp / "data").mkdir()
        (tmp / "lm_eval").mkdir()
        for (culture, style), rows in sorted(docs.items()):
            name = task_name(culture, style)
            with open(tmp / "data" / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            for gen in (False, True):
                t = task_name(culture, style, gen)
                text = _yaml(t, final_data / f"{name}.jsonl", gen, max_tokens, rows[0]["samples"], cfg.temperature)
                (tmp / "lm_eval" / f"{t}.yaml").write_text(text)
            summary.tasks[name] = len(rows)
        (tmp / "lm_eval" / "utils.py").write_text(_UTILS)
        manifest = {"config": cfg.model_dump(mode="json"), "tasks": summary.tasks}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return summary
