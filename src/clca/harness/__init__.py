"""clca's WVS evaluation as tasks of other evaluation harnesses.

    clca harness export --culture Egypt --style persona --personas 20 --out wvs-tasks
    lm_eval --model hf --model_args pretrained=MODEL --include_path wvs-tasks/lm_eval --tasks clca_wvs ...
    inspect eval $(clca harness path inspect) -T docs=wvs-tasks/data/clca_wvs_egy_persona.jsonl --model ...

`export_tasks` writes the evaluation's prompts (the same personas, items and wording as `clca eval`) as
documents, one file per culture and prompt style, with lm-evaluation-harness task YAMLs beside them;
`culture_metrics` turns per-document answer distributions into the culture-level metrics of `clca eval`
(KL, JSD, 1-JSD, W1, majority match, individual accuracy), so both harnesses report clca's numbers.
"""

from ._export import ExportSummary, export_tasks, task_name
from ._scoring import DocResult, culture_metrics, distribution_from_logliks, distribution_from_replies

__all__ = [
    "DocResult", "ExportSummary", "culture_metrics", "distribution_from_logliks", "distribution_from_replies",
    "export_tasks", "task_name",
]  # fmt: skip
