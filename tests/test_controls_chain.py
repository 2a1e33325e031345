"""Acceptance of issue 26: the chain dataset -> LoRA training -> evaluation carries a known effect.

A tiny positive control (Egypt's answers from the bundled reference to 10 evaluation items, rows in the
evaluation's own prompt format, training personas disjoint from the evaluation's) is trained on the real
embedded model with `clca.train.train_lora` and evaluated with `clca.wvs.evaluate` on held-out personas:
the KL to Egypt's answers falls on those items with a paired Wilcoxon p < 0.05. The same assertion on a
deliberately broken chain (the trained adapter not applied at evaluation) must fail: no significant effect.
One adapter, trained once for the module, serves both tests.

The items are the ten two-option items on which Egypt's respondents differ most from the base model: the
base model says "1" (mentioned) to about 9 in 10 of them, most Egyptians say "2" (Q8, Q11, Q13, Q14,
Q16, Q19, Q21, Q23, Q26; Q17 about evenly). That is where a positive control has room to move. The test
proves that the chain carries an effect; it does not say the effect is specific to Egypt (teaching "2" on
two-option items would pass it): the controls study's comparison against the uniform control measures that.
Measured (session 10, 160 rows, lr 1e-3, checkpoints of one run, 12 held-out personas): 10 of 10 items
improved at 8, 16 and 24 steps, mean KL change -1.28 / -1.28 / -1.19, Wilcoxon p 0.002 each (the smallest
p ten items can give). On Q1-Q10, where Egypt's answers go both ways, no setting tried passed at every
checkpoint (session 9: the adapter learns the answer prior pooled over the items before it conditions on
the question; see the issue's notes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from clca.dataset import DatasetConfig, build_dataset
from clca.records import METRIC
from clca.report._stats import paired_differences, wilcoxon_p
from clca.store import RunStore
from clca.wvs import EvalConfig

pytestmark = pytest.mark.slow

ITEMS = ["Q8", "Q11", "Q13", "Q14", "Q16", "Q17", "Q19", "Q21", "Q23", "Q26"]
#: the evaluation: Egypt only, 10 items, held-out personas drawn from Egypt's marginals (m0000...)
EVAL = EvalConfig(cultures=["Egypt"], items=ITEMS, personas=12, bootstrap=0, progress=False, concurrency=16)
ROWS = 64  # about 6 rows per item, each drawn from Egypt's shares for the item
STEPS = 8  # one epoch of the 64 rows at batch 8


def _kl(store: RunStore, alias: str) -> dict[str, float]:
    rec = store.get(METRIC, f"{alias}/persona/EGY/base/kl")
    assert rec is not None, f"no KL of {alias}"
    return dict(rec.data["per_item"])


def _effect(store: RunStore, alias: str) -> tuple[float, float | None, int]:
    """Mean paired change of the per-item KL to Egypt (alias - base), its Wilcoxon p, items improved."""
    d = paired_differences(_kl(store, alias), _kl(store, "base"))
    assert len(d) == len(ITEMS)
    return sum(d.values()) / len(d), wilcoxon_p(list(d.values())), sum(v < 0 for v in d.values())


def assert_target_moves(store: RunStore, alias: str) -> None:
    """The acceptance assertion: KL to the target lower after training, paired Wilcoxon p < 0.05."""
    mean, p, improved = _effect(store, alias)
    assert mean < 0 and p is not None and p < 0.05, f"{alias}: mean KL change {mean:+.4f}, p {p}, {improved} improved"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunStore, dict[str, float]]]:
    from clca.llm import load_model
    from clca.train import TrainConfig, train_lora
    from clca.wvs import evaluate

    root = tmp_path_factory.mktemp("controls-chain")
    store = RunStore(root / "run")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = DatasetConfig(variant="survey_direct", control_rows=ROWS, val_fraction=0.0, tokenizer=None)
    info = build_dataset(store, ds, root / "dataset", eval_cfg=EVAL, progress=False)
    assert info.rows == {"train": ROWS, "validation": 0}
    tc = TrainConfig(
        max_steps=STEPS,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        max_length=256,
        eval=False,
        progress=False,
        save_steps=1000,
    )
    res = train_lora(root / "dataset", tc, root / "adapter")
    assert res.global_step == STEPS
    seconds["train"] = time.perf_counter() - t0

    async def answers() -> None:
        # the broken chain evaluates the model string without the adapter: the base student's own answers,
        # served (as a user who forgot the adapter would get them) from the response cache the base run filled
        cache = root / "responses.sqlite"
        adapted = f"embedded+lora:{root / 'adapter'}"
        runs = (("base", "embedded", cache), ("adapted", adapted, False), ("unapplied", "embedded", cache))
        for alias, spec, cached in runs:
            llm = load_model(spec, cache=cached)
            try:
                await evaluate(store, llm, alias, EVAL)
            finally:
                await llm.aclose()

    t1 = time.perf_counter()
    asyncio.run(answers())
    seconds["eval"] = time.perf_counter() - t1
    yield store, seconds
    store.close()


def test_direct_control_lowers_kl_to_the_target_on_held_out_personas(chain: tuple[RunStore, dict]) -> None:
    store, seconds = chain
    # held out: no evaluation persona is a training persona
    train_personas = {line.split('"scenario": "')[1].split('"')[0] for line in _dataset_lines(store)}
    assert train_personas and not any(p.startswith("survey/EGY/m") for p in train_personas)
    assert_target_moves(store, "adapted")
    mean, p, improved = _effect(store, "adapted")
    print(f"direct control: mean KL change {mean:+.4f}, Wilcoxon p {p:.4g}, {improved}/10 improved; {seconds}")


def test_broken_chain_adapter_not_applied_shows_no_effect(chain: tuple[RunStore, dict]) -> None:
    store, _ = chain
    with pytest.raises(AssertionError):
        assert_target_moves(store, "unapplied")
    mean, p, _ = _effect(store, "unapplied")
    assert p is None or p >= 0.05
    print(f"adapter not applied: mean KL change {mean:+.4f}, Wilcoxon p {p}")


def _dataset_lines(store: RunStore) -> list[str]:
    return (store.run_dir.parent / "dataset" / "train.jsonl").read_text().splitlines()
