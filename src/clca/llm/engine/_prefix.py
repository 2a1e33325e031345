"""Token-prefix helpers of the engine's prompt-state computation (pure Python, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

MIN_PREFIX_REUSE = 16  # a shared prefix shorter than this is not worth a separate forward


@dataclass(frozen=True)
class Step:
    """One computation of a prefix plan: `key` (a prompt, or a prefix several prompts share), computed on
    top of the state of `parent` (a shared prefix computed at an earlier level) or from scratch (None)."""

    key: tuple[int, ...]
    parent: tuple[int, ...] | None


def prefix_plan(keys: list[tuple[int, ...]]) -> list[list[Step]]:
    """Levels of computations that give every prompt in `keys` while computing each shared token once.

    The prompts' token trie is walked from the root: where two or more prompts share at least
    MIN_PREFIX_REUSE tokens beyond what is computed already, that shared prefix is one step (on top of
    its parent), and the walk goes on below it; a prompt is computed on top of the deepest shared prefix
    it lies under. A step's level is one more than its parent's, so each level is one batch of forwards
    whose parents are all ready. A shared prefix is always shorter than each of its prompts (every prompt
    keeps at least one token of its own). Duplicate keys must be removed before.
    """
    levels: list[list[Step]] = []

    def add(level: int, step: Step) -> None:
        while len(levels) <= level:
            levels.append([])
        levels[level].append(step)

    def split(group: list[tuple[int, ...]], parent: tuple[int, ...] | None, level: int) -> None:
        base = len(parent) if parent else 0
        i = 0
        while i < len(group):
            j, shared = i + 1, len(group[i]) - 1
            while j < len(group):
                n = min(common_prefix(group[j - 1], group[j]), shared, len(group[j]) - 1)
                if n < base + MIN_PREFIX_REUSE:
                    break
                shared, j = n, j + 1
            if j - i > 1:
                node = group[i][:shared]
                add(level, Step(node, parent))
                split(group[i:j], node, level + 1)
            else:
                add(level, Step(group[i], parent))
            i = j

    split(sorted(keys), None, 0)
    return levels


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Length of the common start of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
