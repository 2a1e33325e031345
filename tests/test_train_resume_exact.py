"""Training resumed after an interruption reaches exactly max_steps, with the same final step and loss as an
uninterrupted run (real embedded model, CPU, fixed seed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train import tiny_cfg, tiny_dataset

from clca.train import train_lora

pytestmark = pytest.mark.slow


class _Stop(Exception):
    pass


def _interrupt_after_save(at_step: int) -> object:
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # the checkpoint of at_step is complete on disk
            if state.global_step == at_step:
                raise _Stop(f"stopped after checkpoint-{at_step}")

    return Stop()


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("whole")
    data = tiny_dataset(root / "data")
    return data, train_lora(data, _cfg(), root / "adapter")


def _cfg() -> object:
    return tiny_cfg(max_steps=2, save_steps=1, eval_steps=None)


@pytest.mark.parametrize("stop_at", [1, 2])  # mid-training, and after the last checkpoint (train_result unwritten)
def test_resume_reaches_exactly_max_steps_with_the_uninterrupted_loss(tmp_path: Path, whole, stop_at: int) -> None:
    data, whole = whole
    cfg = _cfg()
    with pytest.raises(_Stop):
        train_lora(data, cfg, tmp_path / "cut", callbacks=[_interrupt_after_save(stop_at)])
    assert not (tmp_path / "cut" / "adapter_model.safetensors").exists()
    seen: list[int] = []
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen.append(state.global_step)

    resumed = train_lora(data, cfg, tmp_path / "cut", resume=True, callbacks=[Steps()])
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith(f"checkpoint-{stop_at}")
    assert resumed.global_step == whole.global_step == 2
    assert seen == list(range(stop_at + 1, 3))  # only the steps that were missing
    assert resumed.eval_loss == pytest.approx(whole.eval_loss, rel=1e-4, abs=1e-4)
    assert resumed.train_loss == pytest.approx(whole.train_loss, rel=1e-3)
