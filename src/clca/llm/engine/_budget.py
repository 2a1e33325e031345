"""The in-process engine's memory budget, in bytes: one number (`max_kv_mb`) bounds every KV the engine holds.

The budget is split in two:
  * the prompt-prefix cache (`_radix.PrefixCache`) gets `PREFIX_SHARE` of it (or `prefix_cache_mb`
    when that is set lower);
  * a batch gets the rest: the KV of its rows (prompt + every token it may generate) in the decoding
    batch, plus, while rows join, their prompt states from the prompt forward (so each token is counted
    `BATCH_COPIES` times). `batch_tokens` is that share in tokens, from the KV bytes per token the engine
    measured on the model; the batcher splits work into batches of at most that many tokens (a batch
    never grows with the work: 24 long prompts are decoded a few at a time, rows joining as others
    finish).

By default the budget comes from the memory available when the model loads (psutil; on a GPU, the free
device memory): `AUTO_SHARE` of it, at most `AUTO_CAP_WEIGHTS` times the model's own weights and at
least `AUTO_FLOOR_MB`, so that a small model on a large machine does not hold gigabytes of cache for
the few percent of speed they buy. The engine prints the budget once when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 2**20
PREFIX_SHARE = 0.5  # of the budget, for the prompt-prefix cache
BATCH_COPIES = 2  # a joining row's KV is held twice for a moment (prompt state + decoding batch)
AUTO_SHARE = 0.25  # of the available memory, by default
AUTO_CAP_WEIGHTS = 1.0  # the default budget is at most this many times the model's weights ...
AUTO_FLOOR_MB = 512  # ... and at least this much (when that much is available)


@dataclass(frozen=True)
class MemoryBudget:
    """Where the engine's KV memory may go (bytes), and where the figure came from."""

    kv_bytes: int
    prefix_bytes: int
    batch_tokens: int
    kv_bytes_per_token: int
    source: str

    def line(self) -> str:
        return (
            f"memory budget: KV {self.kv_bytes / MB:.0f} MB ({self.source}): prefix cache "
            f"{self.prefix_bytes / MB:.0f} MB, batches of at most {self.batch_tokens} tokens "
            f"({self.kv_bytes_per_token / 1024:.1f} KiB of KV per token)"
        )


def available_bytes(device: str) -> tuple[int, str]:
    """Memory free for the engine now: the GPU's free memory for a CUDA device, else the machine's available
    memory (psutil), and a word saying which."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), "free GPU memory"
    import psutil

    return int(psutil.virtual_memory().available), "available memory"


def plan_budget(
    max_kv_mb: int | None,
    prefix_cache_mb: int | None,
    kv_bytes_per_token: int,
    weights_bytes: int,
    device: str = "cpu",
) -> MemoryBudget:
    """The budget for a loaded model: `max_kv_mb` when set, else the default from available memory."""
    if max_kv_mb is not None:
        total, source = max_kv_mb * MB, "max_kv_mb"
    else:
        avail, what = available_bytes(device)
        total = int(min(avail * AUTO_SHARE, max(weights_bytes * AUTO_CAP_WEIGHTS, AUTO_FLOOR_MB * MB)))
        cap = max(weights_bytes * AUTO_CAP_WEIGHTS, AUTO_FLOOR_MB * MB) / MB
        source = f"default: {AUTO_SHARE:.0%} of {avail / 2**30:.1f} GiB {what}, at most {cap:.0f} MB"
    prefix = int(total * PREFIX_SHARE)
    if prefix_cache_mb is not None:
        prefix = min(prefix, prefix_cache_mb * MB)
    batch_tokens = max(1, (total - prefix) // (kv_bytes_per_token * BATCH_COPIES))
    return MemoryBudget(total, prefix, int(batch_tokens), kv_bytes_per_token, source)


_printed: set[str] = set()


def announce(budget: MemoryBudget) -> None:
    """Print the budget line on stderr, once per process for each distinct budget."""
    import sys

    line = budget.line()
    if line not in _printed:
        _printed.add(line)
        print(line, file=sys.stderr, flush=True)
