"""Token-prefix helpers of the engine's prompt-state computation (pure Python, no torch)."""

from __future__ import annotations

MIN_PREFIX_REUSE = 16  # a shared prefix shorter than this is not worth a separate forward


def shared_head(conts: list[list[int]], limit: int = 8) -> list[int]:
    """Leading tokens common to all of several continuations, leaving each at least one token of its own."""
    if len(conts) < 2 or any(not c for c in conts):
        return []
    n = min(min(len(c) for c in conts) - 1, limit)
    head: list[int] = []
    for t in range(n):
        tid = conts[0][t]
        if any(c[t] != tid for c in conts):
            break
        head.append(tid)
    return head


def shared_prefix_groups(
    keys: list[tuple[int, ...]],
) -> tuple[list[tuple[tuple[int, ...], list[tuple[int, ...]]]], list[tuple[int, ...]]]:
    """Group prompts (sorted, adjacent) that share a prefix of at least MIN_PREFIX_REUSE tokens.

    Returns ([(shared prefix, member prompts)], prompts in no group). A prefix is always shorter than each
    of its members, so every member has at least one token of its own to compute. A prompt does not join
    a group of two or more if that would cut the group's shared prefix to less than half (a second
    prompt always joins a lone first one when they share enough: before it there is no shared prefix
    to protect, only the first prompt's own length).
    """
    groups: list[tuple[tuple[int, ...], list[tuple[int, ...]]]] = []
    alone: list[tuple[int, ...]] = []
    cur: list[tuple[int, ...]] = []
    plen = 0

    def close() -> None:
        if len(cur) > 1:
            groups.append((cur[0][:plen], list(cur)))
        else:
            alone.extend(cur)

    for key in sorted(keys):
        if cur:
            n = min(common_prefix(cur[-1], key), plen, len(key) - 1)
            if n >= MIN_PREFIX_REUSE and (len(cur) == 1 or 2 * n >= plen):  # join unless it halves a shared prefix
                cur.append(key)
                plen = n
                continue
            close()
        cur, plen = [key], len(key) - 1
    close()
    return groups, alone


def common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Length of the common start of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
